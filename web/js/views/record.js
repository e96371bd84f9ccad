// The call's consultation record, as everyone in the call sees it (docs/protocol.md, "Consultation
// records"): a persistent indicator while a record runs (asking, recording, paused, and who is awaited
// or declined), the question put to this participant, and their way to agree, decline or withdraw.
// The host starts and stops the record from here.

import { $, userText } from "../dom.js";
import { currentLanguage, errorText, t, tNodes } from "../i18n.js";
import { api } from "../rest.js";

// Names as one phrase of the interface's language ("A, B and C"), each name isolated in a <bdi>.
function nameList(names) {
  const fragment = document.createDocumentFragment();
  const parts = new Intl.ListFormat(currentLanguage(), { type: "conjunction" }).formatToParts(names.map((_, index) => `\u0000${index}`));
  for (const part of parts) {
    if (part.type === "element") fragment.append(names[Number(part.value.slice(1))]);
    else fragment.append(part.value);
  }
  return fragment;
}

export class RecordPanel {
  // call: the Call on screen (its participants, its own id, its connection, whether it is the host's).
  constructor(call) {
    this.call = call;
    this.state = null; // the latest record_state while a record runs
    this.askedFor = null; // the record this page has already put its question for
  }

  // A record_state message.
  update(message) {
    this.state = message.state === "off" ? null : message;
    const mine = this.myAnswer();
    if (mine === "asked" && this.askedFor !== message.record_id) {
      this.askedFor = message.record_id;
      this.ask();
    } else if (mine !== "asked") {
      this.closeQuestion();
    }
    this.render();
  }

  // The call dropped or ended: the server says again where the record stands after a rejoin.
  reset() {
    this.state = null;
    this.closeQuestion();
    this.render();
  }

  myAnswer() {
    return this.state ? this.state.consent[this.call.participantId] || null : null;
  }

  // Who gave `answer`, by name (this page's participant as "you").
  namesOf(answer) {
    const names = [];
    for (const [participantId, given] of Object.entries(this.state.consent)) {
      if (given !== answer) continue;
      if (participantId === this.call.participantId) names.push(t("record.you"));
      else {
        const participant = this.call.participants.get(participantId);
        names.push(userText(participant ? participant.name : t("record.someone")));
      }
    }
    return names;
  }

  render() {
    const indicator = $("#record-indicator");
    const joined = this.call.status === "joined";
    $("#start-record").hidden = !(joined && !this.state && this.call.isHost());
    indicator.hidden = !this.state;
    if (!this.state) {
      $("#record-status").textContent = "";
      return;
    }
    indicator.dataset.state = this.state.state;
    let status;
    if (this.state.state === "recording") status = tNodes("record.recording");
    else if (this.state.state === "paused") status = tNodes("record.paused", { names: nameList(this.namesOf("declined")) });
    else status = tNodes("record.asking", { names: nameList(this.namesOf("asked")) });
    $("#record-status").replaceChildren(status);
    const mine = this.myAnswer();
    $("#record-agree").hidden = mine !== "asked" && mine !== "declined";
    $("#record-decline").hidden = mine !== "asked";
    $("#record-withdraw").hidden = mine !== "agreed";
    $("#record-stop").hidden = !this.call.isHost();
    $("#consent-body").textContent = t(this.state.started_by === this.call.host ? "record.askBodyHost" : "record.askBodyAdmin");
  }

  ask() {
    const dialog = $("#consent-dialog");
    if (!dialog.open) dialog.showModal();
    dialog.focus(); // not on Agree: a stray Enter must not answer for the reader
  }

  closeQuestion() {
    const dialog = $("#consent-dialog");
    if (dialog.open) dialog.close();
  }

  answer(agree) {
    this.closeQuestion();
    this.call.connection.send({ type: "record_consent", agree });
  }

  async start() {
    if (!confirm(t("record.startConfirm"))) return;
    try {
      await api(`/api/rooms/${encodeURIComponent(this.call.roomId)}/record`, { method: "POST" });
    } catch (error) {
      this.call.app.noticeText(errorText(error));
    }
  }

  async stop() {
    if (!confirm(t("record.stopConfirm"))) return;
    try {
      await api(`/api/rooms/${encodeURIComponent(this.call.roomId)}/record/stop`, { method: "POST" });
    } catch (error) {
      this.call.app.noticeText(errorText(error));
    }
  }
}

// The buttons are wired once; they act on the record of whichever call is on screen.
export function wireRecordControls(currentCall) {
  const panel = () => {
    const call = currentCall();
    return call ? call.record : null;
  };
  $("#start-record").addEventListener("click", () => panel() && panel().start());
  $("#record-stop").addEventListener("click", () => panel() && panel().stop());
  for (const [id, agree] of [["#record-agree", true], ["#consent-agree", true], ["#record-decline", false], ["#consent-decline", false], ["#record-withdraw", false]]) {
    $(id).addEventListener("click", () => panel() && panel().answer(agree));
  }
}
