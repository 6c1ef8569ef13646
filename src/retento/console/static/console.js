// Retento console: the CSRF token on every htmx request (from the csrf-token meta tag), and ECharts charts
// drawn from the JSON each chart element names (<div data-chart="id-of-a-json-script">), and live pages: an element
// <div data-live="/path/of/an/event-stream"> opens an EventSource; each inbox event makes htmx refresh the elements
// whose data-live-refresh is "all" or the event's dialog id (they listen for "inbox-changed").
(function () {
  "use strict";
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) { event.detail.headers["X-CSRF-Token"] = meta.content; }
  });

  function drawCharts(root) {
    if (typeof echarts === "undefined") { return; }
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var source = document.getElementById(el.dataset.chart);
      if (!source || el.dataset.drawn) { return; }
      var spec = JSON.parse(source.textContent);
      var locale = document.documentElement.lang === "ru" ? "RU" : "EN";
      var chart = echarts.init(el, null, { renderer: "svg", locale: locale });
      chart.setOption(spec);
      el.dataset.drawn = "1";
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }
  var LIVE_EVENTS = ["inbox_message", "inbox_message_changed", "inbox_dialog_changed"];

  function refresh(dialogId) {
    if (typeof htmx === "undefined") { return; }
    document.querySelectorAll("[data-live-refresh]").forEach(function (el) {
      var which = el.dataset.liveRefresh;
      if (which === "all" || which === dialogId) { htmx.trigger(el, "inbox-changed"); }
    });
  }

  function listen() {
    var host = document.querySelector("[data-live]");
    if (!host || typeof EventSource === "undefined") { return; }
    var source = new EventSource(host.dataset.live);
    LIVE_EVENTS.forEach(function (type) {
      source.addEventListener(type, function (event) {
        var data = JSON.parse(event.data);
        refresh(String((data.payload || {}).dialog_id));
      });
    });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function toNewest(root) {
    root.querySelectorAll("ol.messages").forEach(function (list) {
      var box = list.closest("#conversation");
      if (box) { box.scrollTop = box.scrollHeight; }
    });
  }

  // a suggestion's "Use" / "Edit" buttons (data-fill: the id of the element holding its text) put the text into
  // the reply box; "Edit" moves the focus there. The input event makes the documentation links follow.
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-fill]") : null;
    var source = button && document.getElementById(button.dataset.fill);
    var box = document.getElementById("reply-text");
    if (!source || !box) { return; }
    box.value = source.textContent.trim();
    box.dispatchEvent(new Event("input", { bubbles: true }));
    if (button.dataset.edit) { box.focus(); }
  });

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); listen(); toNewest(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawCharts(event.target); toNewest(event.target); });
})();
