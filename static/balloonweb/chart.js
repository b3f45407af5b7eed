// The domain page's memory chart (uPlot): the samples of the selected range, refetched after a live hint.
(function () {
  "use strict";
  const box = document.getElementById("memory-chart");
  if (!box || !window.uPlot) return;
  const canvas = box.querySelector(".chart-canvas");
  const empty = box.querySelector(".chart-empty");
  const picker = document.getElementById("chart-range");
  let range = box.dataset.range;
  let plot = null;
  let timer = null;
  const mib = (u, v) => (v == null ? "—" : `${Math.round(v).toLocaleString("en")} MiB`);
  const height = () => (window.innerWidth < 600 ? 200 : 280);

  function options() {
    return {
      width: canvas.clientWidth || box.clientWidth,
      height: height(),
      series: [
        {},
        { label: "Target", stroke: "#6b7280", dash: [6, 4], width: 1.5, value: mib },
        { label: "Actual", stroke: "#1d4ed8", width: 2, value: mib },
        { label: "Used", stroke: "#c2410c", fill: "rgba(194, 65, 12, 0.10)", width: 2, value: mib },
        { label: "Available", stroke: "#15803d", width: 1.5, value: mib },
      ],
      axes: [{}, { size: 84, values: (u, values) => values.map((v) => `${v.toLocaleString("en")} MiB`) }],
      scales: {
        // The whole selected window, ending now: a gap in the samples shows as a gap, not as a stretched line.
        x: { time: true, range: () => [Date.now() / 1000 - Number(range), Date.now() / 1000] },
        y: { range: (u, min, max) => [0, Math.max(max * 1.1, 1)] },
      },
    };
  }

  async function load() {
    const response = await fetch(`${box.dataset.src}?range=${range}`, { headers: { Accept: "application/json", "X-Background": "1" } });
    if (!response.ok) return;
    const d = await response.json();
    const data = [d.t, d.target, d.actual, d.used, d.available];
    empty.hidden = d.t.length > 0;
    canvas.hidden = d.t.length === 0; // no empty axes: the sentence above says why there is nothing
    if (plot) plot.setData(data);
    else plot = new uPlot(options(), data, canvas);
  }

  picker.addEventListener("change", () => {
    range = picker.value;
    load();
  });
  window.addEventListener("resize", () => plot && plot.setSize({ width: canvas.clientWidth, height: height() }));
  document.addEventListener("bw:live", (event) => {
    if (!event.detail.types.some((type) => ["domains", "domain", "*"].includes(type))) return;
    clearTimeout(timer);
    timer = setTimeout(load, 300);
  });
  // The poller writes a sample every SAMPLE_EVERY_S (15 s) even when nothing changed (and then sends no hint): fetch anyway.
  setInterval(load, 15_000);
  load();
})();
