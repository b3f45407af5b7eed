// Live hints over one WebSocket per page (the <body data-live> path). A message names what changed; every
// region marked data-live-region="TYPES" that cares about its type is refetched by htmx (hx-trigger="live").
// After a reconnect every region is refetched, since hints sent while the socket was down are lost.
(function () {
  "use strict";
  const path = document.body.dataset.live;
  if (!path) return;
  const status = document.getElementById("live-status");
  // Kept for the browser tests and for a curious operator's console.
  const live = (window.bwLive = { messages: [], opens: 0, connected: false });
  // Closed by the server on purpose (domains/consumers.py): 4000 asks for a reconnect, whose connect checks
  // afresh what the user may see (a role or a team changed); the others are final.
  const RECHECK = 4000;
  const STOPPED = { 4401: "signed out: reload the page to sign in", 4403: "not live: you may no longer see this page; reload it" };
  let retry = 500;
  let due = new Set();
  let timer = null;

  function show(text, state) {
    if (!status) return;
    status.hidden = false;
    status.textContent = text;
    status.dataset.state = state;
  }

  const FINISHED = ["succeeded", "failed", "cancelled"];

  // What a hint is about: its type, and "job-finished" for a job that ended (regions that change only then).
  function kinds(message) {
    if (message.type === "resync") return ["*"]; // the server may have missed hints: refetch everything
    const found = [message.type];
    if (message.type === "job" && FINISHED.includes(message.state)) found.push("job-finished");
    return found;
  }

  function wanted(region, types) {
    const mine = region.dataset.liveRegion.split(/\s+/);
    return types.includes("*") || types.some((type) => mine.includes(type));
  }

  // Coalesce a burst of hints (a poll touches many domains) into one refetch per region.
  function refresh(types) {
    document.querySelectorAll("[data-live-region]").forEach((region) => {
      if (wanted(region, types)) due.add(region);
    });
    document.dispatchEvent(new CustomEvent("bw:live", { detail: { types } }));
    if (!timer) timer = setTimeout(flush, 150);
  }

  // Controls (data-live-keep-focus) are not pulled from under someone using one, nor any region from under a
  // keyboard user's focus; no region is refetched for ALERT_HOLD_MS after a refusal appeared in it, so that the
  // person gets to read it. A refetch held back is made once the hold ends (a refusal left standing froze the
  // controls until that same control was used again).
  const ALERT_HOLD_MS = 20_000;

  // Stamped when they appear (an outerHTML swap puts in a new element, so every new one is looked for).
  function stampAlerts() {
    document.querySelectorAll("[role=alert]:not([data-shown-at])").forEach((alert) => (alert.dataset.shownAt = Date.now()));
  }
  stampAlerts();
  document.body.addEventListener("htmx:afterSwap", stampAlerts);

  function inUse(region) {
    // Any focus holds a control; a keyboard user's focus holds any region, unless it survives the swap: htmx
    // restores focus to an element with an id, and keeps an hx-preserve element (the fleet's filter) as it is.
    // Only while the window has the focus: someone in another window is not typing here.
    const focused = document.activeElement;
    const restored = focused.id !== "" || focused.closest("[hx-preserve]") !== null;
    const keyboard = focused.matches(":focus-visible") && !restored;
    if (document.hasFocus() && region.contains(focused) && ("liveKeepFocus" in region.dataset || keyboard)) return true;
    return [...region.querySelectorAll("[role=alert]")].some((alert) => Date.now() - Number(alert.dataset.shownAt || 0) < ALERT_HOLD_MS);
  }

  function flush() {
    timer = null;
    const held = new Set();
    due.forEach((region) => {
      if (!window.htmx) return;
      if (inUse(region)) held.add(region);
      else htmx.trigger(region, "live");
    });
    due = held;
    if (due.size) timer = setTimeout(flush, 1000);
  }

  // The page's own refetches say so: they do not renew an idle session (balloonweb/access/middleware.py).
  document.body.addEventListener("htmx:configRequest", (event) => {
    if (event.detail.triggeringEvent && event.detail.triggeringEvent.type === "live") event.detail.headers["X-Background"] = "1";
  });

  // A refetch already under way when the refusal arrived is dropped rather than swapped in over it.
  document.body.addEventListener("htmx:beforeSwap", (event) => {
    const trigger = event.detail.requestConfig && event.detail.requestConfig.triggeringEvent;
    if (trigger && trigger.type === "live" && inUse(event.detail.target)) {
      event.detail.shouldSwap = false;
      due.add(event.detail.target); // refetched once it is no longer in use
      if (!timer) timer = setTimeout(flush, 1000);
    }
  });

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}${path}`);
    socket.onopen = () => {
      live.connected = true;
      live.opens += 1;
      retry = 500;
      show("live", "ok");
      // Catch up on what happened while we were away: after a reconnect, and also after the first connect, since
      // the page was drawn before the socket joined its groups and a hint sent in between is lost (a job that
      // ended while the page loaded left it showing the domain still there).
      refresh(["*"]);
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      live.messages.push({ at: Date.now(), message });
      if (live.messages.length > 1000) live.messages.shift();
      refresh(kinds(message));
    };
    socket.onclose = (event) => {
      live.connected = false;
      if (STOPPED[event.code]) {
        show(STOPPED[event.code], "stopped");
        return;
      }
      show("reconnecting…", "down");
      // A recheck closes every socket of a team (or of a server after Redis came back) at once: spread the
      // reconnects, each of which checks the rights and refetches the whole page, over up to a second.
      setTimeout(connect, event.code === RECHECK ? 100 + Math.random() * 900 : retry);
      if (event.code !== RECHECK) retry = Math.min(retry * 2, 5000);
    };
    live.socket = socket;
  }

  connect();
})();
