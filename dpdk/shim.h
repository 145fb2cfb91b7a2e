/*
 * ipos DPDK shim: the few DPDK calls ipos needs, as real symbols.
 *
 * DPDK exposes its fast-path API (rx/tx burst, mbuf alloc/free/data pointer,
 * rte_errno) as `static inline` functions and macros, which Rust cannot call.
 * This file turns them into plain functions, and keeps every DPDK struct
 * layout on the C side: Rust holds opaque pointers, except for six fields of
 * struct rte_mbuf (data pointer, lengths, room) that it reads itself so that
 * they inline; shim.c asserts their offsets when it is compiled.
 */
#ifndef IPOS_SHIM_H
#define IPOS_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;

/* Counters of one ethdev port (a subset of struct rte_eth_stats). */
struct ipos_port_stats {
	uint64_t ipackets;
	uint64_t opackets;
	uint64_t ibytes;
	uint64_t obytes;
	uint64_t imissed;
	uint64_t ierrors;
	uint64_t oerrors;
	uint64_t rx_nombuf;
};

/* Error stages reported by ipos_port_init (returned as -(stage * 1000 + errno)). */
enum ipos_port_stage {
	IPOS_STAGE_INFO = 1,
	IPOS_STAGE_CONFIGURE = 2,
	IPOS_STAGE_DESC = 3,
	IPOS_STAGE_RXQ = 4,
	IPOS_STAGE_TXQ = 5,
	IPOS_STAGE_START = 6,
	IPOS_STAGE_PROMISC = 7,
};

int ipos_eal_init(int argc, char **argv);
int ipos_eal_cleanup(void);
int ipos_errno(void);
const char *ipos_strerror(int err);
int ipos_socket_id(void);

struct rte_mempool *ipos_pool_create(const char *name, unsigned int n,
				     unsigned int cache, uint16_t data_room,
				     int socket);
void ipos_pool_free(struct rte_mempool *mp);
unsigned int ipos_pool_avail(const struct rte_mempool *mp);

uint16_t ipos_port_count(void);
int ipos_port_valid(uint16_t port);
/*
 * With several RX queues and a device that hashes, RSS spreads received
 * packets over the queues with `rss_key` (`key_len` bytes; the device's
 * own key when its key size differs). *rss_on says whether it was set up.
 */
int ipos_port_init(uint16_t port, uint16_t nb_rxq, uint16_t nb_txq,
		   uint16_t nb_rxd, uint16_t nb_txd, struct rte_mempool *mp,
		   int promisc, const uint8_t *rss_key, uint8_t key_len,
		   int *rss_on);
int ipos_port_mac(uint16_t port, uint8_t mac[6]);
int ipos_port_name(uint16_t port, char *buf, unsigned int len);
int ipos_port_stats(uint16_t port, struct ipos_port_stats *out);
int ipos_port_stop(uint16_t port);

/* The EAL's lcores: how many, the main one, the worker after `prev`
 * (ipos_lcore_none() for the first; returns ipos_lcore_none() after the last). */
unsigned int ipos_lcore_count(void);

/* Fixes glibc's mmap threshold at `bytes` (mallopt M_MMAP_THRESHOLD, which also stops
 * glibc from raising it on its own): blocks at least that large are mapped fresh and
 * unmapped when freed. Returns 1 on success, 0 otherwise. */
int ipos_malloc_mmap_threshold(size_t bytes);
unsigned int ipos_main_lcore(void);
unsigned int ipos_next_worker(unsigned int prev);
unsigned int ipos_lcore_none(void);
/* Runs f(arg) on worker lcore `lcore`; ipos_wait_lcore returns its result. */
int ipos_remote_launch(int (*f)(void *), void *arg, unsigned int lcore);
int ipos_wait_lcore(unsigned int lcore);

uint16_t ipos_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts,
		       uint16_t n);
uint16_t ipos_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts,
		       uint16_t n);

struct rte_mbuf *ipos_mbuf_alloc(struct rte_mempool *mp);
void ipos_mbuf_free(struct rte_mbuf *m);
uint16_t ipos_mbuf_nb_segs(const struct rte_mbuf *m);
/* The data pointer, lengths and room of an mbuf are read and written by Rust
 * itself (src/port/dpdk.rs, `layout`; shim.c checks the offsets at build time). */

#endif
