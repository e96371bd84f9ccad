// The one-time setup page: the newcomer who opened the link `babelcall serve` printed creates the
// server's administrator, is signed in, and goes on to the main page. The token travels in the
// link's fragment, which browsers never send to a server or put in a Referer header; it is taken out
// of the address bar at once so it stays out of the history.
"use strict";

const token = location.hash.slice(1);
history.replaceState(null, "", location.pathname);

const form = document.getElementById("setup");
const notice = document.getElementById("notice");

function say(text) {
  notice.textContent = text || "";
  notice.hidden = !text;
}

if (!token) {
  document.getElementById("no-link").hidden = false;
} else {
  form.hidden = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = Object.fromEntries(new FormData(form));
    body.token = token;
    const button = form.querySelector("button");
    button.disabled = true;
    say("");
    try {
      const response = await fetch("/api/setup", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
      if (response.ok) {
        location.replace("/");
        return;
      }
      const data = await response.json().catch(() => ({}));
      const error = data.error || {};
      if (error.code === "bad_setup_token") {
        form.hidden = true;
        document.getElementById("no-link").hidden = false;
      }
      say(error.message || `The server answered HTTP ${response.status}.`);
    } catch (error) {
      say(`The server could not be reached: ${error.message}`);
    }
    button.disabled = false;
  });
}
