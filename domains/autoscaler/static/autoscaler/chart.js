// The autoscaler's chart on the domain page (uPlot, loaded by the page): balloon target against actual over the
// last hour, with the autoscaler's resize steps as dots at the size each asked for: filled where the step ran,
// hollow where it did not (recommended, waiting, dismissed, refused, superseded). Refetched every 15 s.
(function () {
  "use strict";
  const box = document.getElementById("autoscaler-chart");
  if (!box) return;
  const canvas = box.querySelector(".chart-canvas");
  const empty = box.querySelector(".chart-empty");
  const mib = (u, v) => (v == null ? "—" : `${Math.round(v).toLocaleString("en")} MiB`);
  let plot = null;

  // uPlot wants one time column: the samples' and the steps' times merged, null where a series has no point.
  function columns(d) {
    const rows = new Map();
    const row = (t) => rows.get(t) || [null, null, null, null];
    d.t.forEach((t, i) => rows.set(t, [d.target[i], d.actual[i], null, null]));
    d.steps.forEach(([t, mibs, state]) => {
      const values = row(t);
      values[state === "applied" ? 2 : 3] = mibs;
      rows.set(t, values);
    });
    const times = [...rows.keys()].sort((a, b) => a - b);
    return [times, ...[0, 1, 2, 3].map((k) => times.map((t) => rows.get(t)[k]))];
  }

  function options() {
    return {
      width: canvas.clientWidth || box.clientWidth || 400,
      height: 220,
      series: [
        {},
        { label: "Target", stroke: "#6b7280", dash: [6, 4], width: 1.5, value: mib, spanGaps: true },
        { label: "Actual", stroke: "#1d4ed8", width: 2, value: mib, spanGaps: true },
        { label: "Step that ran", stroke: "#c2410c", width: 0, value: mib, points: { show: true, size: 9, fill: "#c2410c" } },
        { label: "Step not run", stroke: "#c2410c", width: 0, value: mib, points: { show: true, size: 9, fill: "#ffffff" } },
      ],
      axes: [{}, { size: 84, values: (u, values) => values.map((v) => `${v.toLocaleString("en")} MiB`) }],
      scales: { y: { range: (u, min, max) => [0, Math.max(max * 1.1, 1)] } },
    };
  }

  async function load() {
    if (!window.uPlot) return;
    const response = await fetch(box.dataset.src, { headers: { Accept: "application/json", "X-Background": "1" } });
    if (!response.ok) return;
    const data = columns(await response.json());
    empty.hidden = data[0].length > 0;
    canvas.hidden = data[0].length === 0;
    if (plot) plot.setData(data);
    else if (data[0].length) plot = new uPlot(options(), data, canvas);
  }

  window.addEventListener("resize", () => plot && plot.setSize({ width: canvas.clientWidth, height: 220 }));
  setInterval(load, 15_000);
  window.addEventListener("load", load);
})();
