// The waiting room of a sale that has one (orders/waiting_room.py): the page joins it when it
// opens, learns its place once the early arrivals are drawn at the start, and counts down to its
// turn on the server's clock (place p goes at the start + (p - 1) / the rate let through). The
// sale page's script reads `ticket()` for the purchase and `turnAt()` for its button.
window.shopWaitingRoom = function (page, csrfToken, clock, onChange) {
  "use strict";

  const url = page.dataset.queueUrl;
  const opensAt = Date.parse(page.dataset.waitingRoomOpensAt);
  const startsAt = Date.parse(page.dataset.startsAt);
  const rate = Number(page.dataset.letThroughPerSecond);
  let ticket = null;
  let position = null;
  let timer = null;

  function later(ms) {
    clearTimeout(timer);
    timer = setTimeout(ask, Math.max(0, ms));
  }

  function place(answer) {
    ticket = answer.ticket || ticket;
    position = answer.position;
    if (position === null) {
      onChange("waiting");
      // Everyone asks again just after the start, spread over a second and a half.
      later(startsAt - clock.now() + 200 + Math.random() * 1500);
    } else {
      onChange("placed");
    }
  }

  async function ask() {
    let response;
    let body;
    try {
      ({ response, body } = await window.shopPost(url, csrfToken(), {}));
    } catch (error) {
      later(2000);
      return;
    }
    if (response.status === 200) place(body);
    else if (body.code === "too_early") later(Date.parse(body.opens_at) - clock.now() + 100);
    else if (response.status === 429) later((Number(response.headers.get("Retry-After")) || 2) * 1000);
    else onChange("closed");
  }

  if (clock.now() < opensAt) later(opensAt - clock.now() + 100);
  else ask();
  return {
    ticket: () => ticket,
    position: () => position,
    opensAt,
    turnAt: () => (position === null ? null : startsAt + ((position - 1) * 1000) / rate),
    // A purchase was told it is not this page's turn yet: the answer holds the place, if known.
    notYourTurn(body) {
      if (body.position) place({ position: body.position });
      else later(0);
    },
  };
};
