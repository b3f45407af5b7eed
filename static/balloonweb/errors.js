// What a person sees when an action's request fails outright: a server error (5xx) or no answer at all.
// Refusals (4xx) are swapped in beside their control (templates/base.html); these are not, and without this a
// button would seem to do nothing.
(function () {
  "use strict";

  function say(text) {
    let list = document.getElementById("request-errors");
    if (!list) {
      list = document.createElement("ul");
      list.id = "request-errors";
      list.className = "messages";
      list.setAttribute("role", "alert");
      document.getElementById("main").before(list);
    }
    const item = document.createElement("li");
    item.className = "error";
    item.textContent = text;
    list.replaceChildren(item);
  }

  function background(event) {
    const trigger = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
    return trigger && trigger.type === "live"; // a live refetch: the next hint tries again
  }

  document.addEventListener("htmx:responseError", (event) => {
    if (background(event)) return;
    const status = event.detail.xhr.status;
    say(`The server could not do that (HTTP ${status}): reload the page to see what changed, then try again.`);
  });
  document.addEventListener("htmx:sendError", (event) => {
    if (background(event)) return;
    say("The server did not answer: check the connection, reload the page to see what changed, then try again.");
  });
})();
