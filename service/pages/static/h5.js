/* Progressive enhancement of the citizen's pages (they work without it):
   - a waiting page follows its activation by long-polling its state and reloads when the
     stage changes (without JavaScript a <noscript> refresh does it every 3 s);
   - the city search filters the list as the citizen types, with GET /v1/cities?q=. */
(function () {
  "use strict";

  function follow(section) {
    var url = section.getAttribute("data-follow");
    var stage = section.getAttribute("data-stage");
    var wait = section.getAttribute("data-wait") || "20";
    function poll() {
      fetch(url + "?stage=" + encodeURIComponent(stage) + "&wait=" + wait, {credentials: "same-origin"})
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (s) { if (s.stage !== stage) { window.location.reload(); } else { poll(); } })
        .catch(function () { window.setTimeout(poll, 3000); });
    }
    poll();
  }

  function search(form) {
    var input = form.querySelector("input[name=q]");
    var count = document.getElementById("search-count");
    var items = Array.prototype.slice.call(document.querySelectorAll(".city-list li[data-code]"));
    var sections = Array.prototype.slice.call(document.querySelectorAll(".city-list .province"));
    var api = form.getAttribute("data-search-api");
    var empty = document.getElementById("search-empty");
    var timer = null, asked = 0;
    function show(codes) {
      var shown = 0;
      items.forEach(function (li) {
        var on = codes === null || codes.has(li.getAttribute("data-code"));
        li.hidden = !on;
        if (on) { shown += 1; }
      });
      sections.forEach(function (sec) { sec.hidden = !sec.querySelector("li:not([hidden])"); });
      count.textContent = codes === null ? "共 " + shown + " 个城市" : "找到 " + shown + " 个城市";
      if (empty) { empty.hidden = shown !== 0; }
    }
    function run() {
      var q = input.value.trim();
      if (!q) { show(null); return; }
      var mine = ++asked;
      fetch(api + "?q=" + encodeURIComponent(q))
        .then(function (r) { return r.json(); })
        .then(function (cities) {
          if (mine === asked) { show(new Set(cities.map(function (c) { return c.code; }))); }
        });
    }
    input.addEventListener("input", function () { window.clearTimeout(timer); timer = window.setTimeout(run, 120); });
    form.addEventListener("submit", function (e) { e.preventDefault(); window.clearTimeout(timer); run(); });
  }

  document.querySelectorAll("[data-follow]").forEach(follow);
  var form = document.querySelector("form.search[data-full]");
  if (form) { search(form); }
})();
