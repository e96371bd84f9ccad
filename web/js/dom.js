// Small DOM helpers shared by the views.

export const $ = (selector) => document.querySelector(selector);

// An element with properties (className, textContent, type, ...), attributes (`attrs`) and children.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { attrs, dataset, ...rest } = props;
  Object.assign(node, rest);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  Object.assign(node.dataset, dataset || {});
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

// Text someone typed (a name, a room title, a caption) inside interface text: isolated, so a right-to-left
// name in an English sentence (or the reverse) neither reorders nor is reordered by its neighbours.
export function userText(text, className = "") {
  return el("bdi", { textContent: text, className, dir: "auto" });
}

// A button toggle's state for assistive technology and for CSS ([aria-pressed=true]).
export function setPressed(button, pressed) {
  button.setAttribute("aria-pressed", String(pressed));
}
