// The one-time setup page: the newcomer who opened the link `babelcall serve` printed creates the
// server's administrator, is signed in, and goes on to the main page. The token travels in the
// link's fragment, which browsers never send to a server or put in a Referer header; it is taken out
// of the address bar at once so it stays out of the history.
import { errorText, preferredLanguage, setLanguage, t } from "./i18n.js";
import { api } from "./rest.js";

const token = location.hash.slice(1);
history.replaceState(null, "", location.pathname);

const form = document.getElementById("setup");
const notice = document.getElementById("notice");
const noLink = document.getElementById("no-link");

function say(text) {
  notice.textContent = text || "";
  notice.hidden = !text;
}

await setLanguage(preferredLanguage());
document.title = t("setup.pageTitle");

if (!token) {
  noLink.hidden = false;
} else {
  form.hidden = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    say("");
    try {
      await api("/api/setup", { method: "POST", body: { ...Object.fromEntries(new FormData(form)), token } });
      location.replace("/");
      return;
    } catch (error) {
      if (error.code === "bad_setup_token") {
        form.hidden = true;
        noLink.hidden = false;
      }
      say(errorText(error));
    }
    button.disabled = false;
  });
}
