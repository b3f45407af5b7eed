// A plain form with data-confirm asks first, as the htmx controls do with hx-confirm (Force off, Restart).
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
