// Vigil console: the little the pages need beyond htmx. Loaded from /console/static (the
// Content-Security-Policy allows no inline script). Keeps the live feed to its last N entries.
"use strict";
document.addEventListener("htmx:sseMessage", function () {
  var feed = document.getElementById("feed");
  if (feed === null) return;
  var keep = Number(feed.getAttribute("data-keep")) || 200;
  while (feed.children.length > keep) feed.removeChild(feed.lastElementChild);
});
