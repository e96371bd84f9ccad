// Membership applications and members, for administrators.

import { $, el, userText } from "../dom.js";
import { errorText, formatDateTime, isolate, onLanguageChange, t } from "../i18n.js";
import { api } from "../rest.js";

// What an administrator may decide about a member, by the member's status: [decision, label key].
const MEMBER_DECISIONS = {
  pending: [["approve", "admin.approve"], ["reject", "admin.reject"]],
  approved: [["reject", "admin.endMembership"]],
  rejected: [["approve", "admin.approve"]],
};

let shown = null; // {app, members}

export async function enterAdmin(app) {
  app.show("admin");
  const { members } = await api("/api/admin/members");
  shown = { app, members };
  render();
}

function render() {
  if (!shown) return;
  const { app, members } = shown;
  const pending = members.filter((member) => member.status === "pending");
  $("#no-applications").hidden = pending.length > 0;
  fillMemberTable(app, $("#applications"), pending, (member) => [
    userText(member.name), userText(member.organisation || ""), member.email, formatDateTime(member.created_at),
  ]);
  const decided = members.filter((member) => member.status !== "pending");
  fillMemberTable(app, $("#members"), decided, (member) => [
    member.id === app.me.id ? el("span", {}, userText(member.name), ` ${t("admin.you")}`) : userText(member.name),
    userText(member.organisation || ""),
    member.email,
    member.status === "approved" ? t("admin.member") : t("admin.rejected"),
  ]);
}

function fillMemberTable(app, body, members, cells) {
  body.replaceChildren();
  for (const member of members) {
    const row = el("tr", { dataset: { memberId: member.id } });
    for (const value of cells(member)) row.append(el("td", {}, value));
    const actions = el("td");
    // Administrators cannot change their own membership (the server refuses).
    const decisions = member.id === app.me.id ? [] : MEMBER_DECISIONS[member.status];
    for (const [decision, labelKey] of decisions) {
      const button = el("button", { type: "button", textContent: t(labelKey), className: decision === "approve" ? "" : "secondary" });
      button.addEventListener("click", async () => {
        if (member.status === "approved" && !confirm(t("admin.endConfirm", { name: isolate(member.name) }))) return;
        try {
          await api(`/api/admin/members/${member.id}/${decision}`, { method: "POST" });
          app.notice(null);
        } catch (error) {
          app.noticeText(errorText(error));
        }
        enterAdmin(app);
      });
      actions.append(button);
    }
    row.append(actions);
    body.append(row);
  }
}

export function leaveAdmin() {
  shown = null;
}

onLanguageChange(render);
