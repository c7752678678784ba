// The booking page: a live seat map (the "seats" view), availability counts,
// and the user's requests. Every click is one request with a new request id:
// its claim (or release) is appended with the id as idempotency key, the seat
// shows as pending until the outcome with that id arrives (client.outcome).
import { connect, newIdempotencyKey } from '/client/derive.js';

const rows = 'ABCDEFGHIJ';
const perRow = 20;
const client = connect(undefined, {
  onStatus: (s) => { document.getElementById('status').textContent = s; },
});
window.bookingClient = client;  // for tests and the console

const meInput = document.getElementById('me');
meInput.value = localStorage.getItem('booking.me') || `guest-${Math.floor(Math.random() * 1e6)}`;
meInput.addEventListener('change', () => { localStorage.setItem('booking.me', meInput.value); render(); });
const me = () => meInput.value.trim() || 'guest';

const pending = new Map();  // seat -> request id of the user's open request
const buttons = new Map();  // seat -> button
let seats = new Map();      // seat -> {by, request}

function buildMap() {
  const map = document.getElementById('map');
  for (const row of rows) {
    const label = document.createElement('div');
    label.className = 'row-label';
    label.textContent = row;
    map.append(label);
    for (let n = 1; n <= perRow; ++n) {
      const seat = `${row}${n}`;
      const b = document.createElement('button');
      b.className = 'seat';
      b.dataset.seat = seat;
      b.textContent = n;
      b.addEventListener('click', () => click(seat));
      buttons.set(seat, b);
      map.append(b);
    }
  }
}

function render() {
  for (const [seat, b] of buttons) {
    const holder = seats.get(seat);
    b.classList.toggle('pending', pending.has(seat));
    b.classList.toggle('mine', !!holder && holder.by === me());
    b.classList.toggle('taken', !!holder && holder.by !== me());
    b.title = holder ? `${seat}: ${holder.by}` : `${seat}: free`;
  }
}

function say(text) {
  const li = document.createElement('li');
  li.textContent = text;
  const list = document.getElementById('messages');
  list.prepend(li);
  while (list.children.length > 8) list.lastChild.remove();
}

function click(seat) {
  if (pending.has(seat)) return;  // one open request per seat
  const holder = seats.get(seat);
  if (holder && holder.by !== me()) return say(`${seat} is taken`);
  const type = holder ? 'seat.release' : 'seat.claim';
  const requestId = newIdempotencyKey();
  pending.set(seat, requestId);
  render();
  const { outcome } = client.request(requestId, { type, key: seat, data: { request: requestId, by: me() } });
  outcome.then((o) => {
    const text = { granted: 'booked', taken: `taken (by ${o.holder})`, released: 'cancelled',
                   not_holder: 'not yours' }[o.result] || o.result;
    say(`${seat}: ${text}`);
  }, (e) => say(`${seat}: ${e.message}`)).finally(() => {
    pending.delete(seat);
    render();
  });
}

buildMap();
client.subscribe('seats', { prefix: '' }, (state) => { seats = state; render(); });
client.subscribe('availability', { prefix: '' }, (state) => {
  document.getElementById('availability').textContent =
    `${state.get('free') ?? rows.length * perRow} free, ${state.get('taken') ?? 0} taken`;
});
render();
