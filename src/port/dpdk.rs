//! DPDK poll-mode ports: EAL start-up, mbuf pool, ethdev queues and an owned
//! mbuf wrapper.
//!
//! This is the only module of the crate allowed to use `unsafe`. Every DPDK
//! call goes through the C shim in `dpdk/shim.c` (DPDK's fast path is made of
//! inline functions Rust cannot call directly), and every `unsafe` block says
//! why it is sound.
#![allow(unsafe_code)]

use super::{BufError, PacketBuf, Port, PortCounters, BURST, TX_BACKLOG};
use smoltcp::wire::EthernetAddress;
use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_uint};
use std::ptr::NonNull;

/// Opaque DPDK packet buffer.
#[repr(C)]
pub struct RteMbuf {
    _private: [u8; 0],
}

/// Opaque DPDK mempool.
#[repr(C)]
pub struct RteMempool {
    _private: [u8; 0],
}

/// Mirror of `struct ipos_port_stats` in `dpdk/shim.h`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeviceStats {
    /// Packets received by the device.
    pub ipackets: u64,
    /// Packets sent by the device.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the device dropped because its RX ring was full.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Receive failures for lack of mbufs.
    pub rx_nombuf: u64,
}

extern "C" {
    fn ipos_eal_init(argc: c_int, argv: *mut *mut c_char) -> c_int;
    fn ipos_eal_cleanup() -> c_int;
    fn ipos_strerror(err: c_int) -> *const c_char;
    fn ipos_errno() -> c_int;
    fn ipos_socket_id() -> c_int;
    fn ipos_pool_create(
        name: *const c_char,
        n: c_uint,
        cache: c_uint,
        data_room: u16,
        socket: c_int,
    ) -> *mut RteMempool;
    fn ipos_pool_avail(mp: *const RteMempool) -> c_uint;
    fn ipos_port_count() -> u16;
    fn ipos_port_valid(port: u16) -> c_int;
    fn ipos_port_init(
        port: u16,
        nb_rxq: u16,
        nb_txq: u16,
        nb_rxd: u16,
        nb_txd: u16,
        mp: *mut RteMempool,
        promisc: c_int,
        rss_key: *const u8,
        key_len: u8,
        rss_on: *mut c_int,
    ) -> c_int;
    fn ipos_lcore_count() -> c_uint;
    fn ipos_malloc_mmap_threshold(bytes: usize) -> c_int;
    fn ipos_main_lcore() -> c_uint;
    fn ipos_next_worker(prev: c_uint) -> c_uint;
    fn ipos_lcore_none() -> c_uint;
    fn ipos_remote_launch(
        f: extern "C" fn(*mut std::ffi::c_void) -> c_int,
        arg: *mut std::ffi::c_void,
        lcore: c_uint,
    ) -> c_int;
    fn ipos_wait_lcore(lcore: c_uint) -> c_int;
    fn ipos_port_mac(port: u16, mac: *mut u8) -> c_int;
    fn ipos_port_name(port: u16, buf: *mut c_char, len: c_uint) -> c_int;
    fn ipos_port_stats(port: u16, out: *mut DeviceStats) -> c_int;
    fn ipos_port_stop(port: u16) -> c_int;
    fn ipos_rx_burst(port: u16, queue: u16, pkts: *mut *mut RteMbuf, n: u16) -> u16;
    fn ipos_tx_burst(port: u16, queue: u16, pkts: *mut *mut RteMbuf, n: u16) -> u16;
    fn ipos_mbuf_alloc(mp: *mut RteMempool) -> *mut RteMbuf;
    fn ipos_mbuf_free(m: *mut RteMbuf);
    fn ipos_mbuf_nb_segs(m: *const RteMbuf) -> u16;
}

/// A DPDK error: what failed and DPDK's explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    /// The step that failed.
    pub what: String,
    /// The (positive) errno value.
    pub errno: i32,
}

impl DpdkError {
    fn new(what: impl Into<String>, errno: i32) -> Self {
        DpdkError {
            what: what.into(),
            errno: errno.abs(),
        }
    }
}

impl core::fmt::Display for DpdkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // SAFETY: rte_strerror returns a pointer to a static or thread-local
        // NUL-terminated string for any errno value; we copy it at once.
        let msg = unsafe { CStr::from_ptr(ipos_strerror(self.errno)) };
        write!(
            f,
            "{}: {} (errno {})",
            self.what,
            msg.to_string_lossy(),
            self.errno
        )
    }
}

impl std::error::Error for DpdkError {}

/// Starts the DPDK Environment Abstraction Layer with `args` (the first
/// element is the program name, as in `argv`). Returns how many arguments
/// the EAL consumed. The EAL can be started once per process.
pub fn eal_init(args: &[String]) -> Result<usize, DpdkError> {
    let owned: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| DpdkError::new("EAL argument contains a NUL byte", libc::EINVAL))?;
    let mut argv: Vec<*mut c_char> = owned.iter().map(|c| c.as_ptr() as *mut c_char).collect();
    argv.push(std::ptr::null_mut());
    let argc = c_int::try_from(owned.len())
        .map_err(|_| DpdkError::new("too many EAL arguments", libc::E2BIG))?;
    // SAFETY: argv is a NULL-terminated array of `argc` valid NUL-terminated
    // strings. rte_eal_init may permute the pointer array but does not write
    // through the pointers; `owned` keeps the strings alive for the call, and
    // the EAL copies what it keeps (it duplicates its arguments internally).
    let ret = unsafe { ipos_eal_init(argc, argv.as_mut_ptr()) };
    if ret < 0 {
        return Err(DpdkError::new("rte_eal_init", ret));
    }
    // The EAL keeps pointers into argv for its lifetime in some versions:
    // leak the strings deliberately (once per process).
    std::mem::forget(owned);
    std::mem::forget(argv);
    Ok(ret as usize)
}

/// Releases EAL resources (call once, after every port was stopped).
pub fn eal_cleanup() {
    // SAFETY: called once at shutdown, after all ports were stopped and no
    // other thread uses DPDK any more.
    unsafe {
        ipos_eal_cleanup();
    }
}

/// Number of ethdev ports the EAL found (`--vdev` devices and probed NICs).
pub fn port_count() -> u16 {
    // SAFETY: plain query of EAL state; valid after eal_init.
    unsafe { ipos_port_count() }
}

/// Device name of a port (`net_tap0`, `0000:01:00.0`, ...).
pub fn port_name(port: u16) -> Option<String> {
    let mut buf = [0 as c_char; 64];
    // SAFETY: buf is writable for its full length, which we pass.
    let ret = unsafe { ipos_port_name(port, buf.as_mut_ptr(), buf.len() as c_uint) };
    if ret != 0 {
        return None;
    }
    // SAFETY: the shim NUL-terminates within `buf`.
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// A pool of packet buffers.
pub struct Mempool {
    ptr: NonNull<RteMempool>,
}

// SAFETY: DPDK mempools are designed to be shared between lcores; the pointer
// stays valid for the life of the process (we never free pools).
unsafe impl Send for Mempool {}
// SAFETY: as above; all mempool operations are thread-safe.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `n` mbufs with `data_room` bytes each (including
    /// DPDK's headroom), on the caller's NUMA socket.
    pub fn new(name: &str, n: u32, cache: u32, data_room: u16) -> Result<Mempool, DpdkError> {
        let cname = CString::new(name)
            .map_err(|_| DpdkError::new("pool name contains NUL", libc::EINVAL))?;
        // SAFETY: cname is a valid C string for the call; the EAL is started
        // (the caller got here after eal_init).
        let ptr =
            unsafe { ipos_pool_create(cname.as_ptr(), n, cache, data_room, ipos_socket_id()) };
        match NonNull::new(ptr) {
            Some(ptr) => Ok(Mempool { ptr }),
            // SAFETY: reading DPDK's per-thread errno right after the failure.
            None => Err(DpdkError::new(
                format!("rte_pktmbuf_pool_create({name})"),
                unsafe { ipos_errno() },
            )),
        }
    }

    /// Free mbufs in the pool now.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool pointer is valid (see the Send impl).
        unsafe { ipos_pool_avail(self.ptr.as_ptr()) }
    }

    fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: valid pool pointer; the result is NULL or a fresh mbuf we own.
        NonNull::new(unsafe { ipos_mbuf_alloc(self.ptr.as_ptr()) }).map(|ptr| Mbuf { ptr })
    }
}

/// An owned single-segment DPDK mbuf; dropping it returns it to its pool.
/// It may cross to another lcore (the lanes' hop): see the `Send` impl.
pub struct Mbuf {
    ptr: NonNull<RteMbuf>,
}

// SAFETY: an mbuf is owned by exactly one Mbuf value; DPDK allows an mbuf to
// be freed from any lcore.
unsafe impl Send for Mbuf {}

impl Mbuf {
    fn into_raw(self) -> *mut RteMbuf {
        let p = self.ptr.as_ptr();
        std::mem::forget(self);
        p
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and nobody else references it.
        unsafe { ipos_mbuf_free(self.ptr.as_ptr()) }
    }
}

/// Where the fields the fast path reads sit in `struct rte_mbuf` (DPDK 22.11 on
/// 64-bit targets). The shim checks every one at build time
/// (`_Static_assert` in `dpdk/shim.c`), so a DPDK whose layout differs fails to
/// build instead of misreading. Reading them here, rather than through the
/// shim, lets the compiler inline a frame's data pointer and length: a call
/// across the language boundary per access was a tenth of the forward path.
mod layout {
    pub const BUF_ADDR: usize = 0;
    pub const DATA_OFF: usize = 16;
    pub const NB_SEGS: usize = 20;
    pub const PKT_LEN: usize = 36;
    pub const DATA_LEN: usize = 40;
    pub const BUF_LEN: usize = 54;
}

impl Mbuf {
    /// Reads the `T` at byte offset `off` of the mbuf header.
    #[inline(always)]
    fn field<T: Copy>(&self, off: usize) -> T {
        // SAFETY: `off` is one of `layout`'s offsets, checked against DPDK's
        // struct at build time, of a field of type `T` (naturally aligned in
        // the cache-aligned header); we own the mbuf.
        unsafe { (self.ptr.as_ptr() as *const u8).add(off).cast::<T>().read() }
    }

    /// Writes the `T` at byte offset `off` of the mbuf header.
    #[inline(always)]
    fn set_field<T: Copy>(&mut self, off: usize, v: T) {
        // SAFETY: as in `field`, and `&mut self` gives exclusive access.
        unsafe { (self.ptr.as_ptr() as *mut u8).add(off).cast::<T>().write(v) }
    }

    /// The first byte of the data and the data length.
    #[inline(always)]
    fn raw_data(&self) -> (*mut u8, usize) {
        let base: *mut u8 = self.field(layout::BUF_ADDR);
        let off: u16 = self.field(layout::DATA_OFF);
        let len: u16 = self.field(layout::DATA_LEN);
        // SAFETY: data_off lies within the buffer DPDK gave this mbuf.
        (unsafe { base.add(usize::from(off)) }, usize::from(len))
    }

    /// Sets `data_off`, `data_len` and `pkt_len` (a single segment).
    #[inline(always)]
    fn set_window(&mut self, off: u16, len: u16) {
        self.set_field(layout::DATA_OFF, off);
        self.set_field(layout::DATA_LEN, len);
        self.set_field(layout::PKT_LEN, u32::from(len));
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let (p, len) = self.raw_data();
        // SAFETY: the data pointer and data_len describe the initialised bytes
        // of this (single-segment) mbuf, which we own for the borrow's life.
        unsafe { std::slice::from_raw_parts(p, len) }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let (p, len) = self.raw_data();
        // SAFETY: as in `data`, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(p, len) }
    }

    fn set_len(&mut self, len: usize) -> Result<(), BufError> {
        let len = u16::try_from(len).map_err(|_| BufError::NoTailroom)?;
        let (off, buf_len): (u16, u16) =
            (self.field(layout::DATA_OFF), self.field(layout::BUF_LEN));
        let segs: u16 = self.field(layout::NB_SEGS);
        if segs != 1 || u32::from(off) + u32::from(len) > u32::from(buf_len) {
            return Err(BufError::NoTailroom);
        }
        self.set_window(off, len);
        Ok(())
    }

    fn prepend(&mut self, n: usize) -> Result<(), BufError> {
        let n = u16::try_from(n).map_err(|_| BufError::NoHeadroom)?;
        let (off, len): (u16, u16) = (self.field(layout::DATA_OFF), self.field(layout::DATA_LEN));
        if n > off || self.field::<u16>(layout::NB_SEGS) != 1 {
            return Err(BufError::NoHeadroom);
        }
        // Within buf_len: data_off + data_len does not change.
        self.set_window(off - n, len + n);
        Ok(())
    }

    fn adj(&mut self, n: usize) -> Result<(), BufError> {
        let n = u16::try_from(n).map_err(|_| BufError::TooShort)?;
        let (off, len): (u16, u16) = (self.field(layout::DATA_OFF), self.field(layout::DATA_LEN));
        if n > len || self.field::<u16>(layout::NB_SEGS) != 1 {
            return Err(BufError::TooShort);
        }
        self.set_window(off + n, len - n);
        Ok(())
    }

    fn tailroom(&self) -> usize {
        let off: u16 = self.field(layout::DATA_OFF);
        let len: u16 = self.field(layout::DATA_LEN);
        let buf_len: u16 = self.field(layout::BUF_LEN);
        usize::from(buf_len).saturating_sub(usize::from(off) + usize::from(len))
    }
}

/// How to set up an ethdev port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// DPDK port id.
    pub port_id: u16,
    /// Number of RX and TX queues.
    pub queues: u16,
    /// RX descriptors per queue.
    pub rx_desc: u16,
    /// TX descriptors per queue.
    pub tx_desc: u16,
    /// Enable promiscuous mode (needed to see frames for a VIP MAC on some NICs).
    pub promiscuous: bool,
    /// The RSS key for several queues (the device's own when its key has
    /// another size).
    pub rss_key: [u8; 40],
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            port_id: 0,
            queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            promiscuous: true,
            rss_key: crate::node::RSS_KEY,
        }
    }
}

/// What [`start_port`] set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortStarted {
    /// The device's MAC address.
    pub mac: EthernetAddress,
    /// The device spreads received packets over the queues by RSS (several
    /// queues and a device that hashes IP/TCP/UDP); otherwise every packet
    /// arrives on whichever queue the device picks and the lanes hop it.
    pub rss: bool,
}

/// Configures and starts an ethdev port with `cfg.queues` RX/TX queue pairs
/// fed from `pool`.
pub fn start_port(cfg: &PortConfig, pool: &Mempool) -> Result<PortStarted, DpdkError> {
    // SAFETY: plain query of EAL state.
    if unsafe { ipos_port_valid(cfg.port_id) } == 0 {
        return Err(DpdkError::new(
            format!(
                "port {} does not exist ({} ports found; add a --vdev or bind a NIC)",
                cfg.port_id,
                port_count()
            ),
            libc::ENODEV,
        ));
    }
    let mut rss_on: c_int = 0;
    // SAFETY: valid port id and pool; the key is 40 readable bytes that the
    // device copies during configure; rss_on is a writable int. The shim sets
    // the port up step by step.
    let ret = unsafe {
        ipos_port_init(
            cfg.port_id,
            cfg.queues,
            cfg.queues,
            cfg.rx_desc,
            cfg.tx_desc,
            pool.ptr.as_ptr(),
            cfg.promiscuous as c_int,
            cfg.rss_key.as_ptr(),
            cfg.rss_key.len() as u8,
            &mut rss_on,
        )
    };
    if ret != 0 {
        let code = -ret;
        let stage = match code / 1000 {
            1 => "rte_eth_dev_info_get",
            2 => "rte_eth_dev_configure",
            3 => "rte_eth_dev_adjust_nb_rx_tx_desc",
            4 => "rte_eth_rx_queue_setup",
            5 => "rte_eth_tx_queue_setup",
            6 => "rte_eth_dev_start",
            7 => "rte_eth_promiscuous_enable",
            _ => "port init",
        };
        return Err(DpdkError::new(
            format!("port {}: {stage}", cfg.port_id),
            code % 1000,
        ));
    }
    let mut mac = [0u8; 6];
    // SAFETY: mac is 6 writable bytes.
    let ret = unsafe { ipos_port_mac(cfg.port_id, mac.as_mut_ptr()) };
    if ret != 0 {
        return Err(DpdkError::new("rte_eth_macaddr_get", ret));
    }
    Ok(PortStarted {
        mac: EthernetAddress(mac),
        rss: rss_on != 0,
    })
}

/// Has the C allocator map every block of at least `bytes` fresh from the kernel and
/// unmap it when freed (glibc's `M_MMAP_THRESHOLD`, fixed: glibc would otherwise raise
/// it after the first such free and serve later blocks from its heap). A TCP buffer
/// taken when its lane's pool is empty is then zero pages that become resident only as
/// the connection writes into them, instead of a heap block that `calloc` clears whole.
/// False if the allocator refused.
pub fn malloc_mmap_threshold(bytes: usize) -> bool {
    // SAFETY: mallopt only changes the allocator's parameters; any value is accepted or
    // refused by it, and the call is made before the lanes start allocating.
    unsafe { ipos_malloc_mmap_threshold(bytes) == 1 }
}

/// The EAL's lcores (`-l`), the main one first: the threads a process may
/// poll on.
pub fn lcores() -> Vec<u32> {
    // SAFETY: plain queries of EAL state, valid after eal_init.
    let (main, none, count) = unsafe { (ipos_main_lcore(), ipos_lcore_none(), ipos_lcore_count()) };
    let mut v = Vec::with_capacity(count as usize);
    v.push(main);
    let mut prev = none;
    loop {
        // SAFETY: as above; `prev` is an lcore id or the "none" start value.
        let next = unsafe { ipos_next_worker(prev) };
        if next >= none {
            return v;
        }
        v.push(next);
        prev = next;
    }
}

type LcoreJob = Box<dyn FnOnce() -> i32 + Send>;

extern "C" fn run_lcore_job(arg: *mut std::ffi::c_void) -> c_int {
    // SAFETY: `arg` is the Box<LcoreJob> that launch_on leaked for exactly
    // this call; we take it back once.
    let job: Box<LcoreJob> = unsafe { Box::from_raw(arg.cast::<LcoreJob>()) };
    // A panic must not unwind into DPDK's C frames.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or(-1)
}

/// Runs `job` on worker lcore `lcore` (one of [`lcores`] but the first);
/// [`wait_lcore`] returns what it returned (-1 when it panicked).
pub fn launch_on(lcore: u32, job: impl FnOnce() -> i32 + Send + 'static) -> Result<(), DpdkError> {
    let boxed: Box<LcoreJob> = Box::new(Box::new(job));
    let arg = Box::into_raw(boxed).cast::<std::ffi::c_void>();
    // SAFETY: run_lcore_job takes back the box behind `arg`; on failure the
    // launch did not happen and we take it back here instead.
    let ret = unsafe { ipos_remote_launch(run_lcore_job, arg, lcore) };
    if ret != 0 {
        // SAFETY: not launched: the box is still ours.
        drop(unsafe { Box::from_raw(arg.cast::<LcoreJob>()) });
        return Err(DpdkError::new(
            format!("rte_eal_remote_launch(lcore {lcore})"),
            ret,
        ));
    }
    Ok(())
}

/// Waits for the job on `lcore` to return, and returns its result.
pub fn wait_lcore(lcore: u32) -> i32 {
    // SAFETY: plain EAL call; waiting on an idle lcore returns at once.
    unsafe { ipos_wait_lcore(lcore) }
}

/// Stops and closes a port.
pub fn stop_port(port_id: u16) {
    // SAFETY: stopping a port that this process started; no queue of it is
    // polled any more (the caller stopped its loops).
    unsafe {
        ipos_port_stop(port_id);
    }
}

/// Device counters of a port.
pub fn device_stats(port_id: u16) -> Option<DeviceStats> {
    let mut st = DeviceStats::default();
    // SAFETY: st is a valid, writable struct with the shim's layout.
    (unsafe { ipos_port_stats(port_id, &mut st) } == 0).then_some(st)
}

/// One RX/TX queue pair of a started ethdev port, polled by one lcore.
pub struct DpdkPort {
    port_id: u16,
    queue: u16,
    mac: EthernetAddress,
    pool: Mempool,
    rx: [*mut RteMbuf; BURST],
    /// Frames queued for the device, oldest first (at most `TX_BACKLOG`).
    txq: VecDeque<*mut RteMbuf>,
    /// The device refused frames since the last explicit `flush`.
    tx_blocked: bool,
    counters: PortCounters,
}

// SAFETY: the raw mbuf pointers in the queue are owned by this value (tx) or
// scratch (rx); the queue is polled only by whichever thread owns the port.
unsafe impl Send for DpdkPort {}

impl DpdkPort {
    /// A handle on queue `queue` of a port started with [`start_port`].
    pub fn new(port_id: u16, queue: u16, mac: EthernetAddress, pool: &Mempool) -> DpdkPort {
        DpdkPort {
            port_id,
            queue,
            mac,
            pool: Mempool { ptr: pool.ptr },
            rx: [std::ptr::null_mut(); BURST],
            txq: VecDeque::with_capacity(TX_BACKLOG),
            tx_blocked: false,
            counters: PortCounters::default(),
        }
    }

    /// The DPDK port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }
}

impl Port for DpdkPort {
    type Buf = Mbuf;

    fn mac(&self) -> EthernetAddress {
        self.mac
    }

    fn rx_burst(&mut self, out: &mut Vec<Mbuf>) -> usize {
        let room = BURST
            .saturating_sub(out.len())
            .min(out.capacity() - out.len());
        if room == 0 {
            return 0;
        }
        // SAFETY: self.rx has room for BURST pointers and we ask for at most
        // `room` <= BURST; the driver writes that many valid mbuf pointers.
        let n =
            unsafe { ipos_rx_burst(self.port_id, self.queue, self.rx.as_mut_ptr(), room as u16) }
                as usize;
        for &p in &self.rx[..n] {
            // SAFETY: each pointer returned by rx_burst is a valid mbuf that
            // the driver handed over to us.
            let m = Mbuf {
                ptr: unsafe { NonNull::new_unchecked(p) },
            };
            // SAFETY: read-only query of an mbuf we own.
            if unsafe { ipos_mbuf_nb_segs(p) } != 1 {
                self.counters.rx_chained += 1;
                continue; // `m` drops here and frees the whole chain.
            }
            out.push(m);
        }
        self.counters.rx_packets += n as u64;
        n
    }

    fn alloc(&mut self) -> Option<Mbuf> {
        let m = self.pool.alloc();
        if m.is_none() {
            self.counters.alloc_failed += 1;
        }
        m
    }

    fn send(&mut self, buf: Mbuf) {
        if self.txq.len() >= TX_BACKLOG {
            self.counters.tx_dropped += 1;
            return drop(buf);
        }
        self.txq.push_back(buf.into_raw());
        if self.txq.len() >= BURST && !self.tx_blocked {
            self.push_to_device();
        }
    }

    fn flush(&mut self) {
        self.tx_blocked = false;
        self.push_to_device();
    }

    fn tx_backlog(&self) -> usize {
        self.txq.len()
    }

    fn counters(&self) -> PortCounters {
        self.counters
    }
}

impl DpdkPort {
    /// Hands queued frames to the device in bursts until it refuses some
    /// (its TX ring is full): those stay queued for the next try.
    fn push_to_device(&mut self) {
        while !self.txq.is_empty() {
            let (head, _) = self.txq.as_mut_slices();
            let n = head.len().min(BURST);
            // SAFETY: head[..n] are mbufs we own; the driver takes ownership of
            // the first `sent` of them, which we then forget.
            let sent =
                unsafe { ipos_tx_burst(self.port_id, self.queue, head.as_mut_ptr(), n as u16) }
                    as usize;
            self.txq.drain(..sent);
            self.counters.tx_packets += sent as u64;
            if sent < n {
                self.tx_blocked = true;
                self.counters.tx_deferred += self.txq.len() as u64;
                break;
            }
        }
    }
}

impl Drop for DpdkPort {
    fn drop(&mut self) {
        for p in self.txq.drain(..) {
            // SAFETY: queued mbufs that were never handed to the driver.
            unsafe { ipos_mbuf_free(p) };
        }
    }
}
