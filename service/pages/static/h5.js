/* Progressive enhancement of the citizen's pages (they work without it):
   - a waiting page follows its activation by long-polling its state and reloads when the
     stage changes (without JavaScript a <noscript> refresh does it every 3 s);
   - the city search shows the matching cities as the citizen types, best first, with
     GET /v1/cities?q= (without JavaScript the search form reloads the page with them). */
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
    var results = document.getElementById("search-results");
    var list = results.querySelector("ul");
    var sections = Array.prototype.slice.call(document.querySelectorAll(".city-list .province[data-letter]"));
    var index = document.querySelector("nav.az");
    var empty = document.getElementById("search-empty");
    var items = {};
    document.querySelectorAll(".city-list .province[data-letter] li[data-code]").forEach(function (li) {
      items[li.getAttribute("data-code")] = li;
    });
    var api = form.getAttribute("data-search-api");
    var total = Object.keys(items).length;
    var timer = null, asked = 0;
    function show(codes) {  /* null: every city by province; else the found ones, best first */
      var searching = codes !== null;
      sections.forEach(function (sec) { sec.hidden = searching; });
      index.hidden = searching;
      results.hidden = !searching;
      list.textContent = "";
      var shown = 0;
      (codes || []).forEach(function (code) {
        if (items[code]) { list.appendChild(items[code].cloneNode(true)); shown += 1; }
      });
      count.textContent = searching ? "找到 " + shown + " 个城市" : "共 " + total + " 个城市";
      empty.hidden = !searching || shown !== 0;
    }
    function run() {
      var q = input.value.trim();
      if (!q) { show(null); return; }
      var mine = ++asked;
      fetch(api + "?q=" + encodeURIComponent(q))
        .then(function (r) { return r.json(); })
        .then(function (found) {
          if (mine === asked) { show(found.cities.map(function (c) { return c.code; })); }
        });
    }
    input.addEventListener("input", function () { window.clearTimeout(timer); timer = window.setTimeout(run, 120); });
    form.addEventListener("submit", function (e) { e.preventDefault(); window.clearTimeout(timer); run(); });
  }

  function dynamicCode(section) {
    var image = section.querySelector("#qr-image");
    var note = section.querySelector("#qr-note");
    var form = section.querySelector("#qr-form");
    var button = form.querySelector("button");
    var refresh = null, tick = null;
    function load() {
      window.clearTimeout(refresh);
      window.clearInterval(tick);
      fetch(section.getAttribute("data-qrcode"), {method: "POST", credentials: "same-origin",
        headers: {"X-CSRFToken": section.getAttribute("data-csrf"), "Accept": "application/json"}})
        .then(function (r) { return r.json().then(function (body) { return {ok: r.ok, body: body}; }); })
        .then(function (answer) {
          if (!answer.ok) { image.textContent = ""; note.textContent = answer.body.error.message_zh; return; }
          image.innerHTML = answer.body.svg;  /* made by the service (segno): no input of the page */
          button.textContent = "刷新动态码";
          var until = Date.now() + answer.body.ttl_s * 1000;
          function show() {
            var left = Math.max(0, Math.round((until - Date.now()) / 1000));
            note.textContent = "动态码 " + left + " 秒后自动刷新，只能使用一次。";
          }
          show();
          tick = window.setInterval(show, 1000);
          refresh = window.setTimeout(load, Math.max(answer.body.ttl_s - 5, 5) * 1000);
        })
        .catch(function () { note.textContent = "动态码暂时无法显示，请点击刷新。"; });
    }
    form.addEventListener("submit", function (e) { e.preventDefault(); load(); });
    load();
  }

  document.querySelectorAll("[data-follow]").forEach(follow);
  document.querySelectorAll("[data-qrcode]").forEach(dynamicCode);
  var form = document.querySelector("form.search[data-full]");
  if (form) { search(form); }
})();
