// One live-event stream per page, shared by the page's modules.
//
// Every open EventSource holds a thread of the hub for as long as the page is open;
// a student tablet's lessons and quiz, or the teacher page's class and quiz panels,
// each opening their own would double that (110 streams for a class of 55). Each
// module subscribes with handlers by event type ("open" and "error" included); the
// stream opens with the first subscriber and closes with the last. A subscriber
// that arrives while the stream is already open gets its "open" call at once, so it
// loads its state the same way as after a reconnect. A stream the hub closed for
// good (session over) is opened afresh by the next subscribe().

const PATH = "/api/v1/events";
const subscribers = new Set();
let source = null;
let listened = new Set();

function dispatch(type, ev) {
  for (const handlers of [...subscribers]) {
    const fn = handlers[type];
    if (!fn) continue;
    try {
      fn(ev);
    } catch (err) {
      reportError(err); // one module's failure must not starve the others of the event
    }
  }
}

function listen(type) {
  if (listened.has(type)) return;
  listened.add(type);
  source.addEventListener(type, (ev) => dispatch(type, ev));
}

function open() {
  source = new EventSource(PATH);
  listened = new Set();
  for (const handlers of subscribers) for (const type of Object.keys(handlers)) listen(type);
}

/** Receive live events: `handlers` maps event types ("open", "error", "quiz.started", ...)
 * to functions of the MessageEvent. Returns the function that unsubscribes. */
export function subscribe(handlers) {
  subscribers.add(handlers);
  if (!source || source.readyState === EventSource.CLOSED) {
    if (source) source.close();
    open();
  } else {
    for (const type of Object.keys(handlers)) listen(type);
    if (source.readyState === EventSource.OPEN && handlers.open) {
      setTimeout(() => {
        if (subscribers.has(handlers)) handlers.open(new Event("open"));
      }, 0);
    }
  }
  return () => {
    if (!subscribers.delete(handlers) || subscribers.size) return;
    source.close();
    source = null;
    listened = new Set();
  };
}

/** Whether the shared stream is closed for good (not merely reconnecting). */
export function liveClosed() {
  return !source || source.readyState === EventSource.CLOSED;
}
