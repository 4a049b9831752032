// Draws a circle cut into n equal parts, one part shaded, and names the fraction.
// Runs inside a sandboxed frame: no network, no storage, no access to the hub page.
"use strict";
function draw(parts) {
  var svg = document.getElementById("pie");
  var ns = "http://www.w3.org/2000/svg";
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  for (var i = 0; i < parts; i++) {
    var a0 = (2 * Math.PI * i) / parts - Math.PI / 2;
    var a1 = (2 * Math.PI * (i + 1)) / parts - Math.PI / 2;
    var path = document.createElementNS(ns, "path");
    var large = a1 - a0 > Math.PI ? 1 : 0;
    path.setAttribute("d", "M0 0 L" + 100 * Math.cos(a0) + " " + 100 * Math.sin(a0) +
      " A100 100 0 " + large + " 1 " + 100 * Math.cos(a1) + " " + 100 * Math.sin(a1) + " Z");
    path.setAttribute("fill", i === 0 ? "#f6a53b" : "#fbe3b4");
    path.setAttribute("stroke", "#9a6a1c");
    path.setAttribute("stroke-width", "2");
    svg.appendChild(path);
  }
  document.getElementById("answer").textContent = "每份是 1/" + parts;
  document.body.setAttribute("data-parts", String(parts));
}
document.querySelectorAll("button[data-parts]").forEach(function (b) {
  b.addEventListener("click", function () { draw(Number(b.getAttribute("data-parts"))); });
});
draw(2);
