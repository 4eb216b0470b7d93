// Dependency arrows between swimlane cards, drawn as an SVG layer over the lanes. Redrawn after every htmx swap.
// Large plans would turn into a hairball: above ARROW_LIMIT edges only the focused or hovered card's are drawn.
(function () {
  "use strict";
  var ARROW_LIMIT = 400;
  var SVG = "http://www.w3.org/2000/svg";

  function edges(lanes) {
    var list = [];
    lanes.querySelectorAll(".task-card[data-deps]").forEach(function (card) {
      card.dataset.deps.split(" ").forEach(function (key) {
        var from = key && document.getElementById("task-" + key);
        if (from) list.push([from, card]);
      });
    });
    return list;
  }

  function path(lanes, from, to) {
    var box = lanes.getBoundingClientRect(), a = from.getBoundingClientRect(), b = to.getBoundingClientRect();
    var x1 = a.right - box.left + lanes.scrollLeft, y1 = a.top + a.height / 2 - box.top + lanes.scrollTop;
    var x2 = b.left - box.left + lanes.scrollLeft, y2 = b.top + b.height / 2 - box.top + lanes.scrollTop;
    if (x2 < x1) { x1 = a.left - box.left + lanes.scrollLeft; x2 = b.left - box.left + lanes.scrollLeft; }
    var bend = Math.max(24, Math.abs(x2 - x1) / 2);
    var d = "M" + x1 + "," + y1 + " C" + (x1 + bend) + "," + y1 + " " + (x2 - bend) + "," + y2 + " " + x2 + "," + y2;
    var p = document.createElementNS(SVG, "path");
    p.setAttribute("d", d);
    p.setAttribute("marker-end", "url(#arrow-head)");
    return p;
  }

  function draw(lanes, only) {
    var old = lanes.querySelector("svg.arrows");
    if (old) old.remove();
    if (window.matchMedia("(max-width: 640px)").matches) return;
    var all = edges(lanes);
    var shown = all.length <= ARROW_LIMIT ? all : all.filter(function (e) { return only && (e[0] === only || e[1] === only); });
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "arrows");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("width", lanes.scrollWidth);
    svg.setAttribute("height", lanes.scrollHeight);
    svg.innerHTML = '<defs><marker id="arrow-head" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#8a94a3"/></marker></defs>';
    shown.forEach(function (e) {
      var p = path(lanes, e[0], e[1]);
      if (only && (e[0] === only || e[1] === only)) p.classList.add("hot");
      svg.appendChild(p);
    });
    lanes.prepend(svg);
  }

  function highlight(lanes, card) {
    lanes.querySelectorAll(".is-related").forEach(function (c) { c.classList.remove("is-related"); });
    if (card) {
      edges(lanes).forEach(function (e) {
        if (e[0] === card) e[1].classList.add("is-related");
        if (e[1] === card) e[0].classList.add("is-related");
      });
    }
    draw(lanes, card);
  }

  function setup(root) {
    var lanes = (root || document).querySelector(".lanes");
    if (!lanes) return;
    draw(lanes, null);
    if (lanes.dataset.ready) return;  // listeners once per element (a swap brings a new one)
    lanes.dataset.ready = "1";
    ["mouseover", "focusin"].forEach(function (name) {
      lanes.addEventListener(name, function (event) {
        var card = event.target.closest(".task-card");
        if (card) highlight(lanes, card);
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { setup(document); });
  document.addEventListener("htmx:afterSettle", function () { setup(document); });
  window.addEventListener("resize", function () { setup(document); });
})();
