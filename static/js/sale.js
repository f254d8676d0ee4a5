// The sale page, enhanced: a countdown on the server's clock, the buy button alive at the start,
// units left refreshed while the page is open, and a purchase without leaving the page (the
// form's attempt is its Idempotency-Key, so a double click or a retry buys once). Without this
// script the page works as a plain form.
(function () {
  "use strict";

  const page = document.getElementById("sale");
  if (!page) return;
  const $ = (role) => page.querySelector(`[data-role="${role}"]`);
  const sentences = JSON.parse(document.getElementById("purchase-sentences").textContent);
  const startsAt = Date.parse(page.dataset.startsAt);
  const endsAt = Date.parse(page.dataset.endsAt);
  let nextWaveAt = page.dataset.nextWaveAt ? Date.parse(page.dataset.nextWaveAt) : null;
  const clock = window.shopClock;
  const now = clock.now;

  const button = $("buy");
  const form = $("buy-form");
  const status = $("status");
  let remaining = Number($("remaining").textContent);
  let badge = $("badge").textContent.trim();
  let buying = false; // a purchase is in flight or done: the state poll leaves the button alone
  let holdUntil = 0; // after "too many requests", the button waits until then
  // What the shopper holds against the limit, as the page was drawn for them ("" when unknown).
  const holding = $("holding");
  const held = holding && holding.dataset.held !== "" ? Number(holding.dataset.held) : 0;
  const limit = holding ? Number(holding.dataset.limit) : Infinity;

  function say(text) {
    status.textContent = text;
  }

  function sentence(reason, seconds) {
    const text = sentences[reason] || "Your purchase did not go through. Nothing was charged; please try again.";
    return text.replace("{seconds}", seconds === undefined ? "a few" : String(seconds));
  }

  // `t`: the moment the rest of the page shows (the tick's), so the button never opens at a turn
  // or a wave the line beside it still counts down to.
  function setButton(t = now()) {
    if (!button || buying) return;
    if (badge === "next wave") {
      button.disabled = true;
      button.textContent = "Next wave soon";
    } else if (badge === "sold out" || remaining <= 0) {
      button.disabled = true;
      button.textContent = "Sold out";
    } else if (badge !== "live" && badge !== "scheduled") {
      button.disabled = true;
      button.textContent = "Closed";
    } else if (t < startsAt) {
      button.disabled = true;
      button.textContent = "Starts soon";
    } else if (t >= endsAt) {
      button.disabled = true;
      button.textContent = "Ended";
    } else if (held >= limit) {
      button.disabled = true;
      button.textContent = "Limit reached";
    } else if (room && !(room.turnAt() !== null && t >= room.turnAt())) {
      announceStart();
      button.disabled = true;
      button.textContent = "Waiting for your turn";
    } else if (pass && !pass.token()) {
      announceStart();
      button.disabled = true;
      button.textContent = "Getting your pass…";
    } else {
      announceStart();
      button.disabled = t < holdUntil;
      button.textContent = "Buy now";
    }
  }

  let wasStarted = now() >= startsAt;
  // Said by whichever comes first at the start, the tick or the button opening on a fresh
  // state, so the start is announced before a shopper can press "Buy now".
  function announceStart() {
    if (wasStarted) return;
    wasStarted = true;
    if (remaining > 0) say("The sale has started.");
  }
  // The countdown itself is a quiet timer; the status region announces the moments that matter.
  const milestones = [
    [60_000, "The sale starts in 1 minute."],
    [10_000, "The sale starts in 10 seconds."],
  ].filter(([before]) => startsAt - now() > before);
  function tick() {
    const t = now();
    while (milestones.length && startsAt - t <= milestones[0][0]) {
      say(milestones.shift()[1]);
    }
    const countdown = $("countdown");
    if (countdown) {
      if (t < startsAt) countdown.textContent = `Starts in ${clock.duration(startsAt - t)}`;
      else if (badge === "next wave" && nextWaveAt && t < nextWaveAt) countdown.textContent = `Next wave in ${clock.duration(nextWaveAt - t)}`;
      else if (t < endsAt) countdown.textContent = `Ends in ${clock.duration(endsAt - t)}`;
      else countdown.textContent = "This sale has ended.";
    }
    if (t >= startsAt) announceStart();
    if (room) showPlace(t);
    setButton(t);
  }

  function showState(state) {
    remaining = state.remaining;
    nextWaveAt = state.next_wave_at ? Date.parse(state.next_wave_at) : null;
    $("remaining").textContent = String(state.remaining);
    if ($("to-come") && state.to_come !== undefined) $("to-come").textContent = String(state.to_come);
    const waves = $("waves");
    if (waves && state.next_wave_at !== undefined) {
      // The wave it named has opened: name the next, in the shopper's own time zone, or none.
      const next = nextWaveAt
        ? `; the next opens at ${new Date(nextWaveAt).toLocaleTimeString([], { timeZoneName: "short" })}`
        : "; all of them are out";
      waves.textContent = `Released in ${waves.dataset.count} waves${next}.`;
    }
    if ($("sold-out-note")) $("sold-out-note").hidden = state.badge !== "sold out";
    if (state.badge !== badge) {
      if (state.badge === "sold out" && !buying) say(sentence("sold_out"));
      if (badge === "next wave" && state.badge === "live" && !buying) say("The next wave is open: units are on offer again.");
      badge = state.badge;
      const badgeElement = $("badge");
      badgeElement.textContent = badge;
      page.className = page.className.replace(/\bsale-[a-z-]+\b/, `sale-${badge.replace(" ", "-")}`);
    }
    setButton();
  }

  async function pollState() {
    if (document.visibilityState === "visible") {
      const sent = Date.now();
      try {
        const response = await fetch(page.dataset.stateUrl, { headers: { Accept: "application/json" } });
        if (response.ok) {
          const state = await response.json();
          clock.correct(Date.parse(state.server_time), sent, Date.now());
          showState(state);
        }
      } catch (error) {
        // The next poll tries again; the page keeps what it knows.
      }
    }
    if (["live", "scheduled", "sold out", "next wave"].includes(badge)) setTimeout(pollState, 1000);
  }

  function csrfToken() {
    return form.querySelector("input[name=csrfmiddlewaretoken]").value;
  }

  function newAttempt() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    form.elements.attempt.value = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function refused(reason, seconds) {
    buying = false;
    say(sentence(reason, seconds));
    // A refusal is the answer remembered for this attempt; another try is another attempt.
    newAttempt();
    if (reason === "sold_out") remaining = 0;
    if (reason === "purchase_pass_invalid" && pass) pass.renew();
    if (seconds !== undefined) {
      holdUntil = now() + seconds * 1000;
      setTimeout(setButton, seconds * 1000 + 50);
    }
    setButton();
    if (reason === "limit_exceeded" && button) {
      button.disabled = true;
      buying = true;
    }
  }

  async function buy(event) {
    event.preventDefault();
    if (buying) return;
    buying = true;
    button.disabled = true;
    say("Sending your purchase…");
    let response;
    let body;
    try {
      ({ response, body } = await window.shopPost(
        page.dataset.purchaseUrl,
        csrfToken(),
        { quantity: Number(form.elements.quantity.value) },
        {
          "Idempotency-Key": form.elements.attempt.value,
          ...(pass && pass.token() ? { "Purchase-Pass": pass.token() } : {}),
          ...(room && room.ticket() ? { "Queue-Ticket": room.ticket() } : {}),
        },
      ));
    } catch (error) {
      refused("unavailable");
      return;
    }
    if (response.status === 202) {
      say("In line: your unit is reserved and being written down…");
      waitForResult(body.reservation_id, 300);
    } else if (response.status === 429) {
      refused("rate_limited", Number(response.headers.get("Retry-After")) || 1);
    } else if (response.status === 400 && body.code !== "idempotency_key_reused") {
      refused("invalid");
      say(body.detail || sentence("invalid"));
    } else if (body.code === "not_your_turn" && room) {
      buying = false;
      room.notYourTurn(body);
      setButton();
    } else if (body.next_wave_at) {
      // Every unit released so far is sold; more come with the next wave.
      nextWaveAt = Date.parse(body.next_wave_at);
      showState({ remaining: 0, badge: "next wave", next_wave_at: body.next_wave_at });
      refused("sold_out");
      say(`Every unit released so far is sold. The next wave opens in ${clock.duration(nextWaveAt - now())}.`);
    } else {
      refused(body.code || "unavailable");
    }
  }

  async function waitForResult(reservationId, delay) {
    let result = { status: "pending" };
    try {
      const response = await fetch(page.dataset.resultUrl.replace("RID", encodeURIComponent(reservationId)), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.ok) result = await response.json();
    } catch (error) {
      // Still in line as far as we know; ask again.
    }
    if (result.status === "confirmed") {
      confirmed(result.order_id);
    } else if (result.status === "failed") {
      refused(result.reason);
    } else {
      setTimeout(() => waitForResult(reservationId, Math.min(delay * 1.5, 2000)), delay);
    }
  }

  async function confirmed(orderId) {
    if (button) button.textContent = "Bought";
    const checkout = $("checkout");
    $("pay-form").action = page.dataset.payUrl.replace("/0/", `/${orderId}/`);
    let order = null;
    try {
      const response = await fetch(page.dataset.orderUrl.replace("/0/", `/${orderId}/`), {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (response.ok) order = await response.json();
    } catch (error) {
      // The order's line is a nicety; paying works without it.
    }
    if (order) {
      $("order-line").textContent = `Order #${order.id}: ${order.quantity} × ${order.sku} for ${order.total}.`;
      const payBy = Date.parse(order.pay_by);
      const payCountdown = $("pay-countdown");
      const tickPay = () => {
        const left = payBy - now();
        payCountdown.textContent = left > 0 ? `Pay within ${clock.duration(left)}, or the unit goes back on sale.` : "The time to pay is over.";
        if (left > 0) setTimeout(tickPay, 1000);
      };
      tickPay();
    }
    checkout.hidden = false;
    say(`Confirmed: it's yours! Order #${orderId} waits for your payment.`);
  }

  // A sale that requires a purchase pass: the page gets one (solving the proof of work while the
  // countdown runs) and says where it stands.
  const passLines = {
    solving: "Solving a quick check that keeps bots out…",
    waiting: "Check done. Your purchase pass is issued shortly before the start.",
    ready: "Your purchase pass is ready.",
    renewing: "Getting a new purchase pass…",
  };
  const pass = page.dataset.passUrl && form
    ? window.shopPurchasePass(page.dataset.passUrl, csrfToken, clock, (stage) => {
        const line = $("pass");
        line.hidden = !passLines[stage];
        line.textContent = passLines[stage] || "";
        setButton();
      })
    : null;

  // A sale with a waiting room: the page joins it, shows the place in line and the wait, and
  // opens the button at the shopper's turn.
  let roomStage = null;
  function showPlace(t) {
    const line = $("queue");
    if (roomStage === null && t < room.opensAt) {
      line.textContent = `The waiting room opens in ${clock.duration(room.opensAt - t)}. At the start everyone in it gets a place in a random order, so coming earlier gives no edge.`;
    } else if (roomStage === "waiting") {
      line.textContent = `You are in the waiting room. At the start, in ${clock.duration(startsAt - t)}, everyone here gets a place in a random order: coming earlier gives no edge.`;
    } else if (roomStage === "placed" && t < room.turnAt()) {
      const ahead = room.position() - 1;
      const people = ahead === 1 ? "1 person" : `${ahead.toLocaleString("en")} people`;
      line.textContent = `You are number ${room.position().toLocaleString("en")} in line: ${people} ahead of you, ` +
        `about ${remaining.toLocaleString("en")} units for them and you. Estimated wait: ${clock.duration(room.turnAt() - t)}. ` +
        "You may leave this page and come back: your place is kept.";
    } else if (roomStage === "placed") {
      line.textContent = `It's your turn (you were number ${room.position().toLocaleString("en")} in line).`;
    }
    // The share of the wait behind the shopper, on the server's clock.
    const progress = $("queue-progress");
    if (progress && roomStage === "placed") {
      const span = room.turnAt() - startsAt;
      progress.hidden = false;
      progress.value = span > 0 ? Math.min(1, Math.max(0, (t - startsAt) / span)) : 1;
    }
  }
  const room = page.dataset.queueUrl && form
    ? window.shopWaitingRoom(page, csrfToken, clock, (stage) => {
        const wasWaiting = roomStage !== "placed";
        roomStage = stage;
        showPlace(now());
        if (stage === "placed" && wasWaiting) say(`Your place in line: number ${room.position().toLocaleString("en")}.`);
        setButton();
      })
    : null;

  if (form && button) form.addEventListener("submit", buy);
  tick();
  setInterval(tick, 1000);
  setTimeout(pollState, 1000);
})();
