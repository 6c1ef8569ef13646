// Retento console: the CSRF token on every htmx request (from the csrf-token meta tag), and ECharts charts
// drawn from the JSON each chart element names (<div data-chart="id-of-a-json-script">).
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
  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawCharts(event.target); });
})();
