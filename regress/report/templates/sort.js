/* Optional: click a column heading to sort the divergence table. The report reads fine without it. */
(function () {
  "use strict";
  var table = document.getElementById("divtable");
  if (!table) { return; }
  var hints = document.querySelectorAll(".js-only");
  for (var i = 0; i < hints.length; i++) { hints[i].style.display = "inline"; }
  var heads = table.querySelectorAll("th[data-sort]");
  for (var j = 0; j < heads.length; j++) {
    heads[j].classList.add("sortable");
    heads[j].addEventListener("click", function (ev) {
      var field = ev.currentTarget.getAttribute("data-sort");
      var bodies = Array.prototype.slice.call(table.querySelectorAll("tbody.row"));
      var desc = field === "ratio" && table.getAttribute("data-sorted") === "ratio";
      bodies.sort(function (a, b) {
        var x = parseFloat(a.getAttribute("data-" + field));
        var y = parseFloat(b.getAttribute("data-" + field));
        return desc ? y - x : x - y;
      });
      table.setAttribute("data-sorted", desc ? "ratio-desc" : field);
      for (var k = 0; k < bodies.length; k++) { table.appendChild(bodies[k]); }
    });
  }
})();
