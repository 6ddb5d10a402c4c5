// Accessibility patches for Bokeh/Panel widgets (issue 14), run once per page when the
// document is ready, before the dashboard's tabs are built (they arrive later from the server).
// Documented, with the BokehJS internals each one reads, in app/compat/accessibility.py.
//
// Bokeh 3.9 renders these widgets inside shadow roots without what a screen reader or a
// keyboard needs, and has no public ARIA properties; each patch wraps one method of the
// widget's view class (only when `wrap_views`: the tested Bokeh versions) and adds it:
// - Tabs: headers get role=tablist/tab, aria-selected and a roving tabindex; Left/Right/Home/End
//   move the focus along the headers, Enter or Space opens the focused tab (manual activation:
//   a tab is built on first opening, which takes seconds, so arrowing past a tab must not
//   build it; WAI-ARIA APG "Tabs", "Deciding When to Make Selection Automatically Follow Focus").
// - Slider: the noUiSlider handle (role=slider) has no accessible name (axe
//   aria-input-field-name; noUiSlider issues #1019 and #1223): aria-label = the slider's title;
//   aria-valuetext = the value as the slider's format shows it (noUiSlider says "9.00").
// - Checkbox: the <input> and its text are siblings, not a <label> (axe "label"):
//   aria-labelledby the text, and a click on the text toggles the box.
// - Spinner: the up/down buttons are empty (axe button-name) and act on mouse events only:
//   labelled "Increase/Decrease <title>" and taken out of the Tab order (the arrow keys in the
//   input do the same from the keyboard).
// - Card: the collapsible header is a <button> whose only text is the title pane, rendered in
//   that pane's own shadow root, so its name depends on when the pane has painted (axe
//   button-name, seen in projector mode, where the restyled page re-renders the panes):
//   aria-label = the title, and aria-expanded kept in step with collapsed.
// - A widget that re-renders keeps the keyboard focus on the same kind of element.
// Always (plain DOM): the template's main column is the page's main landmark and its title the
// level-1 heading. The focus ring inside every widget's shadow root is not here: it is a
// stylesheet of the template's design (app/dashboard.py, Panel's public Design modifiers).
// A patch that fails leaves the widget as Bokeh made it: the page never breaks over a label.
(function () {
  if (window.__nbodyAccessibility) return;
  window.__nbodyAccessibility = true;

  // Landmarks of the template page (plain DOM, on every Bokeh version).
  const main = document.getElementById("main");
  if (main && !main.hasAttribute("role")) main.setAttribute("role", "main");
  const title = document.querySelector("#header .app-header");
  if (title && !title.hasAttribute("role")) { title.setAttribute("role", "heading"); title.setAttribute("aria-level", "1"); }
  if (!wrap_views) return;  // outside the tested Bokeh versions: widgets as Bokeh made them

  const viewClass = (name) => {
    try {
      const model = Bokeh.Models.get(name);
      return model ? model.prototype.default_view : null;
    } catch (error) {
      return null;
    }
  };
  const patched = new Set();
  const after = (View, method, fn) => {
    if (!View || typeof View.prototype[method] !== "function") return;
    const key = View.__name__ + "." + method;
    if (patched.has(View.prototype[method])) return;  // already wrapped (here or on a base class)
    const original = View.prototype[method];
    const wrapped = function (...args) {
      const result = original.apply(this, args);
      const run = () => { try { fn.call(this); } catch (error) { console.warn("nbody accessibility:", key, error); } };
      if (result && typeof result.then === "function") result.then(run); else run();  // async methods: after they finish
      return result;
    };
    patched.add(wrapped);
    View.prototype[method] = wrapped;
  };
  const plain = (text) => String(text == null ? "" : text).replace(/<[^>]*>/g, "").replace(/[:\s]+$/, "").trim();

  // A widget that re-renders (a button whose label changes: Play -> Pause) builds new elements,
  // and the focused one vanished with the focus: a keyboard user was thrown back to <body>.
  // Put the focus on the same kind of element in the new rendering.
  let layoutBase = viewClass("Slider");
  while (layoutBase && layoutBase.__name__ !== "LayoutDOMView") layoutBase = Object.getPrototypeOf(layoutBase);
  if (layoutBase && typeof layoutBase.prototype.rerender === "function") {
    const original = layoutBase.prototype.rerender;
    layoutBase.prototype.rerender = function (...args) {
      const focused = this.shadow_el ? this.shadow_el.activeElement : null;
      const result = original.apply(this, args);
      try {
        const lost = !document.activeElement || document.activeElement === document.body;
        if (focused && !focused.shadowRoot && !focused.isConnected && lost && this.shadow_el) {
          const selector = focused.tagName.toLowerCase() + (focused.classList[0] ? "." + focused.classList[0] : "");
          const again = this.shadow_el.querySelector(selector);
          if (again) again.focus({ preventScroll: true });
        }
      } catch (error) { console.warn("nbody accessibility: focus after re-render", error); }
      return result;
    };
  }

  // Tabs (Panel's and Bokeh's). Bokeh appends the headers after the tab contents (the grid
  // draws them on top), so Tab reached them only after every control of every tab: move them
  // first in the DOM, where they are on screen.
  const headersFirst = function () {
    const header = this.header_el, root = this.shadow_el;
    if (!header || !root || header.parentNode !== root) return;
    const first = (this.child_views || []).map((view) => view && view.el).find((el) => el && el.parentNode === root);
    if (first && (header.compareDocumentPosition(first) & Node.DOCUMENT_POSITION_PRECEDING)) root.insertBefore(header, first);
  };
  const syncTabs = function () {
    const wrapper = this.headers_wrapper_el;
    const headers = this.header_els || [];
    if (!wrapper) return;
    wrapper.setAttribute("role", "tablist");
    if (!wrapper.hasAttribute("aria-label")) wrapper.setAttribute("aria-label", "Dashboard tabs");
    const active = this.model.active;
    const focused = this.shadow_el ? this.shadow_el.activeElement : null;
    const holder = headers.includes(focused) ? focused : headers[active];
    headers.forEach((el, i) => {
      el.setAttribute("role", "tab");
      el.setAttribute("aria-selected", i === active ? "true" : "false");
      el.tabIndex = el === holder ? 0 : -1;
    });
    if (wrapper.__nbodyKeys) return;
    wrapper.__nbodyKeys = true;
    const view = this;
    wrapper.addEventListener("keydown", (event) => {
      const list = view.header_els || [];
      const index = list.indexOf(event.target);
      if (index < 0 || event.altKey || event.ctrlKey || event.metaKey) return;
      let next = null;
      if (event.key === "ArrowRight" || event.key === "ArrowDown") next = (index + 1) % list.length;
      else if (event.key === "ArrowLeft" || event.key === "ArrowUp") next = (index - 1 + list.length) % list.length;
      else if (event.key === "Home") next = 0;
      else if (event.key === "End") next = list.length - 1;
      else if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();  // also keeps the page's shortcuts (space = play) out of it
        list[index].click();
        return;
      } else return;
      event.preventDefault();  // an arrow here moves along the tabs, not a simulation step
      list.forEach((el, i) => { el.tabIndex = i === next ? 0 : -1; });
      list[next].focus();
    });
    wrapper.addEventListener("focusout", (event) => {
      if (wrapper.contains(event.relatedTarget)) return;
      const list = view.header_els || [];
      list.forEach((el, i) => { el.tabIndex = i === view.model.active ? 0 : -1; });
    });
  };
  // Panel's dynamic Tabs send new tab contents when one opens, and Bokeh then builds new header
  // elements: the focused header vanished and the focus fell to <body>. Keep it on the header.
  const keepHeaderFocus = (View) => {
    if (!View || typeof View.prototype._update_headers !== "function") return;
    const original = View.prototype._update_headers;
    if (patched.has(original)) return;
    const wrapped = function (...args) {
      const old = this.header_els || [];
      const index = this.shadow_el ? old.indexOf(this.shadow_el.activeElement) : -1;
      const result = original.apply(this, args);
      try {
        syncTabs.call(this);
        const header = (this.header_els || [])[index];
        if (index >= 0 && header && header !== old[index]) { header.tabIndex = 0; header.focus(); }
      } catch (error) { console.warn("nbody accessibility: tab headers", error); }
      return result;
    };
    patched.add(wrapped);
    View.prototype._update_headers = wrapped;
  };
  for (const name of ["panel.models.tabs.Tabs", "Tabs"]) {
    const View = viewClass(name);
    after(View, "render", headersFirst);
    after(View, "update_children", headersFirst);
    keepHeaderFocus(View);
    after(View, "update_active", syncTabs);
  }

  // Sliders: name the handles after the title (kept in step when the title changes), or after the
  // label a DiscreteSlider's index formatter carries (speak_discrete_slider); and say the value as
  // the page shows it: noUiSlider's aria-valuetext is its own two-decimal number (an index, for a
  // DiscreteSlider), so it is replaced on each update by the view's formatted value and unit.
  const formatArgs = (view) => (view.model.format && view.model.format.args) || {};
  const nameHandles = function () {
    if (!this.shadow_el) return;
    const label = plain(this.model.title) || plain(this.model.name) || plain(formatArgs(this).label) || "slider";
    for (const handle of this.shadow_el.querySelectorAll(".noUi-handle")) handle.setAttribute("aria-label", label);
    const slider = this._noUiSlider;
    if (!slider || slider.__nbodyValueText) return;
    slider.__nbodyValueText = true;
    const view = this;
    // After noUiSlider's own aria handler, which it binds again on every updateOptions (then it
    // runs after this one): write in a microtask, once the whole update event has run.
    const speak = (values, _handle, unencoded) => queueMicrotask(() => {
      const handles = view.shadow_el ? view.shadow_el.querySelectorAll(".noUi-handle") : [];
      const unit = plain(formatArgs(view).unit);
      (unencoded || []).forEach((value, i) => {
        if (handles[i]) handles[i].setAttribute("aria-valuetext", plain(view.pretty(value)) + (unit ? " " + unit : ""));
      });
    });
    slider.on("update.nbodyaria", speak);  // noUiSlider calls it at once with the current values
  };
  for (const name of ["Slider", "RangeSlider", "DateSlider", "DateRangeSlider", "DatetimeRangeSlider", "CategoricalSlider"]) {
    const View = viewClass(name);
    after(View, "render", nameHandles);
    after(View, "_update_title", nameHandles);
  }

  // Checkboxes: the text labels the box; a click on the text toggles it.
  const labelCheckbox = function () {
    const box = this.checkbox_el, text = this.label_el;
    if (!box || !text) return;
    text.id = text.id || "nbody-checkbox-label";
    box.setAttribute("aria-labelledby", text.id);
    if (!text.__nbodyClick) {
      text.__nbodyClick = true;
      text.style.cursor = "pointer";
      text.addEventListener("click", () => box.click());
    }
  };
  after(viewClass("Checkbox"), "render", labelCheckbox);

  // Spinners: name the up/down buttons; the arrow keys in the box do their job from the keyboard.
  const labelSpinButtons = function () {
    const title = plain(this.model.title) || "value";
    const pairs = [[this.btn_up_el, "Increase "], [this.btn_down_el, "Decrease "]];
    for (const [button, verb] of pairs) {
      if (!button) continue;
      button.setAttribute("aria-label", verb + title);
      button.tabIndex = -1;
    }
  };
  after(viewClass("Spinner"), "render", labelSpinButtons);

  // Cards: the header button is named after the title and says whether the card is open.
  const labelCardHeader = function () {
    const button = this.button_el;
    if (!button) return;
    const title = (this.child_views || [])[0];
    const label = title && title.model ? plain(title.model.text || title.model.object || "") : "";
    if (label) button.setAttribute("aria-label", label);
    button.setAttribute("aria-expanded", this.model.collapsed ? "false" : "true");
  };
  const Card = viewClass("panel.models.layout.Card");
  after(Card, "render", labelCardHeader);
  after(Card, "_collapse", labelCardHeader);
})();
