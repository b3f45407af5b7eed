// The resize slider and its text box show the same number (MiB); the text box also takes units (2G).
document.addEventListener("input", (event) => {
  const source = event.target;
  if (source.dataset.sync) {
    document.getElementById(source.dataset.sync).value = source.value;
  } else if (source.id === "resize-memory" && /^\d+$/.test(source.value.trim())) {
    const slider = document.getElementById("resize-slider");
    if (slider) slider.value = source.value.trim();
  }
});
