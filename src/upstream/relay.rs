//! The relay: a helper thread per node that holds the upstream sockets
//! (`mio`, epoll on Linux) and moves bytes between them and the poll loop.
//!
//! **What crosses between the threads.** Per relayed connection, two
//! single-producer single-consumer byte rings of [`RING_BYTES`] (`rtrb`):
//! towards the upstream (the poll loop writes, the helper reads) and towards
//! the client (the helper writes, the poll loop reads). Besides them, two
//! bounded queues (`crossbeam`'s `ArrayQueue`, [`QUEUE_LEN`] entries each):
//! commands to the helper ([`Cmd`]: open, kick, shut down, close) and events
//! to the poll loop ([`RelayEvent`]: connected, data, end, failed). Nothing
//! locks; the poll loop allocates only when it opens a relayed connection
//! (its rings), never per packet.
//!
//! **Waking the helper.** The helper sleeps in `epoll_wait` when it has
//! nothing to do, after saying so in a flag. The poll loop queues its
//! commands and, once per iteration ([`Relay::flush`]), writes the helper's
//! eventfd only if the flag is set: one syscall per burst of work for a
//! sleeping helper, none while it is busy. (A fence on each side makes sure
//! that a command queued just as the helper goes to sleep is seen by one of
//! them.) The helper also wakes every [`IDLE_WAIT`] on its own.
//!
//! **A queue that is full.** An open that cannot be queued fails its
//! connection (the client gets the upstream's failure: 502 or RST). A kick
//! that cannot be queued sets a flag after which the helper looks at every
//! connection once; an event that cannot be queued sets a flag after which
//! the poll loop looks at every relayed connection once. Both are counted
//! ([`RelayCounters`]).

use super::UpstreamAddr;
use crossbeam::queue::ArrayQueue;
use hashbrown::HashMap;
use mio::net::{TcpStream, UnixStream};
use mio::{Events, Interest, Poll, Token, Waker};
use rtrb::{Consumer, Producer, RingBuffer};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Bytes of each of a relayed connection's two rings.
pub const RING_BYTES: usize = 64 * 1024;
/// Entries of the command queue and of the event queue.
pub const QUEUE_LEN: usize = 16 * 1024;
/// How long the helper sleeps when nothing wakes it.
pub const IDLE_WAIT: Duration = Duration::from_millis(50);

const WAKER: Token = Token(usize::MAX);

/// A request from the poll loop to the helper, naming a connection by the
/// token the poll loop chose for it.
pub(crate) enum Cmd {
    /// Connect to `addr`; send `header` first (the PROXY v2 header, or
    /// nothing), then what `to_up` carries; put what the upstream sends in
    /// `from_up`.
    Open {
        token: u64,
        addr: Arc<UpstreamAddr>,
        header: Option<[u8; super::proxy::HEADER_LEN]>,
        to_up: Consumer<u8>,
        from_up: Producer<u8>,
    },
    /// Bytes wait in `to_up`, or room appeared in `from_up`.
    Kick(u64),
    /// The client sent its FIN: once `to_up` is empty, shut the upstream's
    /// write side.
    Shutdown(u64),
    /// The connection is gone: close the socket.
    Close(u64),
}

/// What the helper tells the poll loop about a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEvent {
    /// The upstream accepted the connection.
    Connected(u64),
    /// Bytes arrived in the ring towards the client, or room appeared in the
    /// ring towards the upstream.
    Data(u64),
    /// The upstream closed its side; everything it sent is in the ring.
    End(u64),
    /// The upstream refused the connection (`true`) or it failed later.
    Failed(u64, bool),
}

/// Counts kept by the helper thread (read by the poll loop for its stats).
#[derive(Debug, Default)]
pub struct RelayCounters {
    /// Connections the upstream accepted.
    pub connects: AtomicU64,
    /// Connections the upstream refused (or that could not be made).
    pub connect_failures: AtomicU64,
    /// Connections that failed after they were made (a reset, an error).
    pub errors: AtomicU64,
    /// Bytes written to upstreams (PROXY headers included).
    pub bytes_up: AtomicU64,
    /// Bytes read from upstreams.
    pub bytes_down: AtomicU64,
    /// Commands that found the command queue full.
    pub commands_lost: AtomicU64,
    /// Events that found the event queue full.
    pub events_lost: AtomicU64,
}

struct Shared {
    cmds: ArrayQueue<Cmd>,
    events: ArrayQueue<RelayEvent>,
    /// The helper sleeps (or is about to) in `epoll_wait`.
    asleep: AtomicBool,
    stop: AtomicBool,
    /// A kick was lost: the helper looks at every connection.
    kicks_lost: AtomicBool,
    /// An event was lost: the poll loop looks at every relayed connection.
    events_lost: AtomicBool,
    waker: Waker,
    counters: RelayCounters,
}

/// The poll loop's handle on its helper thread. Dropping it stops the
/// helper and closes every upstream socket.
pub struct Relay {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    /// Commands were queued since the last [`Relay::flush`].
    queued: bool,
}

/// The rings of a connection the poll loop just opened.
pub(crate) struct Opened {
    pub to_up: Producer<u8>,
    pub from_up: Consumer<u8>,
    pub closer: Closer,
}

/// Closes a relayed connection's socket when dropped (the poll loop's side
/// of a connection holds one).
pub(crate) struct Closer {
    token: u64,
    shared: Arc<Shared>,
}

impl Drop for Closer {
    fn drop(&mut self) {
        let s = &self.shared;
        if s.cmds.push(Cmd::Close(self.token)).is_err() {
            // The helper will find the ring abandoned when it next looks.
            s.counters.commands_lost.fetch_add(1, Ordering::Relaxed);
            s.kicks_lost.store(true, Ordering::Release);
        }
    }
}

impl Relay {
    /// Starts the helper thread of node `node`.
    pub fn spawn(node: &str) -> io::Result<Relay> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        let shared = Arc::new(Shared {
            cmds: ArrayQueue::new(QUEUE_LEN),
            events: ArrayQueue::new(QUEUE_LEN),
            asleep: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            kicks_lost: AtomicBool::new(false),
            events_lost: AtomicBool::new(false),
            waker,
            counters: RelayCounters::default(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("relay-{node}"))
            .spawn(move || Helper::new(poll, s).run())?;
        Ok(Relay {
            shared,
            thread: Some(thread),
            queued: false,
        })
    }

    /// Queues the opening of connection `token`; its rings, or None when the
    /// command queue is full (counted).
    pub(crate) fn open(
        &mut self,
        token: u64,
        addr: Arc<UpstreamAddr>,
        header: Option<[u8; super::proxy::HEADER_LEN]>,
    ) -> Option<Opened> {
        let (to_up, up_rx) = RingBuffer::new(RING_BYTES);
        let (down_tx, from_up) = RingBuffer::new(RING_BYTES);
        let cmd = Cmd::Open {
            token,
            addr,
            header,
            to_up: up_rx,
            from_up: down_tx,
        };
        if self.shared.cmds.push(cmd).is_err() {
            self.shared
                .counters
                .commands_lost
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.queued = true;
        Some(Opened {
            to_up,
            from_up,
            closer: Closer {
                token,
                shared: self.shared.clone(),
            },
        })
    }

    /// Tells the helper that connection `token` has bytes for the upstream
    /// or room for its answer.
    pub(crate) fn kick(&mut self, token: u64) {
        self.command(Cmd::Kick(token));
    }

    /// The client of connection `token` sent its FIN.
    pub(crate) fn shutdown(&mut self, token: u64) {
        self.command(Cmd::Shutdown(token));
    }

    fn command(&mut self, cmd: Cmd) {
        if self.shared.cmds.push(cmd).is_err() {
            self.shared
                .counters
                .commands_lost
                .fetch_add(1, Ordering::Relaxed);
            self.shared.kicks_lost.store(true, Ordering::Release);
        }
        self.queued = true;
    }

    /// Wakes the helper if commands were queued and it sleeps. Once per
    /// poll-loop iteration.
    pub fn flush(&mut self) {
        if !std::mem::take(&mut self.queued) {
            return;
        }
        fence(Ordering::SeqCst);
        if self.shared.asleep.swap(false, Ordering::SeqCst) {
            let _ = self.shared.waker.wake();
        }
    }

    /// The next event from the helper.
    pub fn next_event(&mut self) -> Option<RelayEvent> {
        self.shared.events.pop()
    }

    /// True once after an event was lost: the caller looks at every relayed
    /// connection.
    pub fn take_events_lost(&mut self) -> bool {
        self.shared.events_lost.swap(false, Ordering::AcqRel)
    }

    /// The helper's counts.
    pub fn counters(&self) -> &RelayCounters {
        &self.shared.counters
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.shared.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }

    /// Ok(true) once connected, Ok(false) while the connect is in progress.
    fn connected(&self) -> io::Result<bool> {
        let (err, peer) = match self {
            Stream::Tcp(s) => (s.take_error()?, s.peer_addr().map(|_| ())),
            Stream::Unix(s) => (s.take_error()?, s.peer_addr().map(|_| ())),
        };
        if let Some(e) = err {
            return Err(e);
        }
        match peer {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(b),
            Stream::Unix(s) => s.read(b),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(b),
            Stream::Unix(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One upstream connection, on the helper's side.
struct Link {
    stream: Stream,
    to_up: Consumer<u8>,
    from_up: Producer<u8>,
    header: Option<[u8; super::proxy::HEADER_LEN]>,
    header_sent: usize,
    connected: bool,
    /// The socket may take more bytes (no `WouldBlock` since the last
    /// writable event).
    writable: bool,
    /// The socket may have bytes to read.
    readable: bool,
    /// Shut the write side once `to_up` is empty.
    shutdown_wanted: bool,
    shut: bool,
    /// The upstream closed its side.
    ended: bool,
    /// The poll loop was told of the end.
    end_told: bool,
}

/// What became of a link after it was looked at.
enum Outcome {
    Alive,
    Failed { refused: bool },
}

struct Helper {
    poll: Poll,
    shared: Arc<Shared>,
    links: HashMap<u64, Link>,
    buf_events: Events,
}

impl Helper {
    fn new(poll: Poll, shared: Arc<Shared>) -> Helper {
        Helper {
            poll,
            shared,
            links: HashMap::new(),
            buf_events: Events::with_capacity(256),
        }
    }

    fn run(mut self) {
        while !self.shared.stop.load(Ordering::SeqCst) {
            let mut busy = self.commands();
            if self.shared.kicks_lost.swap(false, Ordering::AcqRel) {
                let all: Vec<u64> = self.links.keys().copied().collect();
                for t in all {
                    self.service(t);
                }
                busy = true;
            }
            let timeout = if busy {
                Some(Duration::ZERO)
            } else {
                self.shared.asleep.store(true, Ordering::SeqCst);
                fence(Ordering::SeqCst);
                if self.shared.cmds.is_empty() && !self.shared.stop.load(Ordering::SeqCst) {
                    Some(IDLE_WAIT)
                } else {
                    Some(Duration::ZERO)
                }
            };
            let polled = self.poll.poll(&mut self.buf_events, timeout);
            self.shared.asleep.store(false, Ordering::SeqCst);
            if let Err(e) = polled {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("relay: epoll failed: {e}; the relay stops");
                    return;
                }
                continue;
            }
            let ready: Vec<(u64, bool, bool)> = self
                .buf_events
                .iter()
                .filter(|e| e.token() != WAKER)
                .map(|e| {
                    (
                        e.token().0 as u64,
                        e.is_readable() || e.is_read_closed() || e.is_error(),
                        e.is_writable() || e.is_write_closed() || e.is_error(),
                    )
                })
                .collect();
            for (t, r, w) in ready {
                if let Some(l) = self.links.get_mut(&t) {
                    l.readable |= r;
                    l.writable |= w;
                }
                self.service(t);
            }
        }
    }

    /// Takes every queued command; true when there were any.
    fn commands(&mut self) -> bool {
        let mut any = false;
        while let Some(cmd) = self.shared.cmds.pop() {
            any = true;
            match cmd {
                Cmd::Open {
                    token,
                    addr,
                    header,
                    to_up,
                    from_up,
                } => self.open(token, &addr, header, to_up, from_up),
                Cmd::Kick(t) => self.service(t),
                Cmd::Shutdown(t) => {
                    if let Some(l) = self.links.get_mut(&t) {
                        l.shutdown_wanted = true;
                    }
                    self.service(t);
                }
                Cmd::Close(t) => {
                    if let Some(mut l) = self.links.remove(&t) {
                        let _ = self.poll.registry().deregister(l.stream.source());
                    }
                }
            }
        }
        any
    }

    fn open(
        &mut self,
        token: u64,
        addr: &UpstreamAddr,
        header: Option<[u8; super::proxy::HEADER_LEN]>,
        to_up: Consumer<u8>,
        from_up: Producer<u8>,
    ) {
        let made = match addr {
            UpstreamAddr::Tcp(a) => TcpStream::connect(*a).map(Stream::Tcp),
            UpstreamAddr::Unix(p) => UnixStream::connect(p).map(Stream::Unix),
        };
        let mut stream = match made {
            Ok(s) => s,
            Err(e) => {
                log::debug!("relay: cannot connect to {addr}: {e}");
                return self.failed(token, true);
            }
        };
        if let Err(e) = self.poll.registry().register(
            stream.source(),
            Token(token as usize),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("relay: cannot poll a socket to {addr}: {e}");
            return self.failed(token, true);
        }
        self.links.insert(
            token,
            Link {
                stream,
                to_up,
                from_up,
                header,
                header_sent: 0,
                connected: false,
                writable: false,
                readable: false,
                shutdown_wanted: false,
                shut: false,
                ended: false,
                end_told: false,
            },
        );
    }

    fn failed(&mut self, token: u64, refused: bool) {
        let c = &self.shared.counters;
        if refused {
            c.connect_failures.fetch_add(1, Ordering::Relaxed);
        } else {
            c.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.event(RelayEvent::Failed(token, refused));
    }

    fn event(&self, ev: RelayEvent) {
        if self.shared.events.push(ev).is_err() {
            self.shared
                .counters
                .events_lost
                .fetch_add(1, Ordering::Relaxed);
            self.shared.events_lost.store(true, Ordering::Release);
        }
    }

    /// Moves what can move on connection `token`.
    fn service(&mut self, token: u64) {
        let Some(link) = self.links.get_mut(&token) else {
            return;
        };
        let mut events = [None; 3];
        let outcome = pump(link, &self.shared.counters, &mut events);
        for ev in events.into_iter().flatten() {
            self.event(ev.with_token(token));
        }
        if let Outcome::Failed { refused } = outcome {
            if let Some(mut l) = self.links.remove(&token) {
                let _ = self.poll.registry().deregister(l.stream.source());
            }
            self.failed(token, refused);
        }
    }
}

/// One look at a link: connect, write, read. Up to three events for the
/// poll loop go in `events`.
fn pump(l: &mut Link, c: &RelayCounters, events: &mut [Option<RelayEvent>; 3]) -> Outcome {
    let token_events = |evs: &mut [Option<RelayEvent>; 3], ev: RelayEvent| {
        if let Some(slot) = evs.iter_mut().find(|e| e.is_none() || **e == Some(ev)) {
            *slot = Some(ev);
        }
    };
    if !l.connected {
        if !l.writable && !l.readable {
            return Outcome::Alive;
        }
        match l.stream.connected() {
            Ok(true) => {
                l.connected = true;
                c.connects.fetch_add(1, Ordering::Relaxed);
                token_events(events, RelayEvent::Connected(0));
            }
            Ok(false) => return Outcome::Alive,
            Err(_) => return Outcome::Failed { refused: true },
        }
    }
    let mut freed = false;
    // Towards the upstream: the header first, then the ring.
    while l.writable {
        let r = if let Some(h) = l.header.filter(|h| l.header_sent < h.len()) {
            match l.stream.write(&h[l.header_sent..]) {
                Ok(n) => {
                    l.header_sent += n;
                    Ok(n)
                }
                Err(e) => Err(e),
            }
        } else {
            let n = l.to_up.slots();
            if n == 0 {
                break;
            }
            let chunk = l.to_up.read_chunk(n).expect("slots are readable");
            let (a, b) = chunk.as_slices();
            let r = if a.is_empty() {
                l.stream.write(b)
            } else {
                l.stream.write(a)
            };
            match r {
                Ok(w) => {
                    chunk.commit(w);
                    freed = true;
                    Ok(w)
                }
                Err(e) => Err(e),
            }
        };
        match r {
            Ok(0) => break,
            Ok(n) => {
                c.bytes_up.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => l.writable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Outcome::Failed { refused: false },
        }
    }
    let header_done = l.header.is_none_or(|h| l.header_sent >= h.len());
    if l.shutdown_wanted && !l.shut && header_done && l.to_up.is_empty() {
        l.shut = true;
        let _ = l.stream.shutdown_write();
    }
    // Towards the client, while the ring has room.
    let mut arrived = false;
    while l.readable && !l.ended {
        let room = l.from_up.slots();
        if room == 0 {
            break; // the poll loop kicks once it has read some
        }
        let mut chunk = l.from_up.write_chunk(room).expect("slots are writable");
        let r = l.stream.read(chunk.as_mut_slices().0);
        match r {
            Ok(0) => {
                chunk.commit(0);
                l.ended = true;
            }
            Ok(n) => {
                chunk.commit(n);
                c.bytes_down.fetch_add(n as u64, Ordering::Relaxed);
                arrived = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                chunk.commit(0);
                l.readable = false;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => chunk.commit(0),
            Err(_) => {
                chunk.commit(0);
                return Outcome::Failed { refused: false };
            }
        }
    }
    if arrived || freed {
        token_events(events, RelayEvent::Data(0));
    }
    if l.ended && !l.end_told {
        l.end_told = true;
        token_events(events, RelayEvent::End(0));
    }
    Outcome::Alive
}

impl RelayEvent {
    /// The same event for connection `token`.
    fn with_token(self, token: u64) -> RelayEvent {
        match self {
            RelayEvent::Connected(_) => RelayEvent::Connected(token),
            RelayEvent::Data(_) => RelayEvent::Data(token),
            RelayEvent::End(_) => RelayEvent::End(token),
            RelayEvent::Failed(_, r) => RelayEvent::Failed(token, r),
        }
    }

    /// The connection the event is about.
    pub fn token(&self) -> u64 {
        match *self {
            RelayEvent::Connected(t)
            | RelayEvent::Data(t)
            | RelayEvent::End(t)
            | RelayEvent::Failed(t, _) => t,
        }
    }
}
