/* ipos DPDK shim: see shim.h. */
#include <errno.h>
#include <malloc.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "shim.h"

/* Rust reads and writes these mbuf fields itself (src/port/dpdk.rs, `layout`),
 * so that a frame's data pointer and length inline into the fast path. */
#include <stddef.h>
#define IPOS_AT(field, off)                                                  \
	_Static_assert(offsetof(struct rte_mbuf, field) == (off),            \
		       "struct rte_mbuf." #field " moved: update the offsets " \
		       "in src/port/dpdk.rs (mod layout)")
IPOS_AT(buf_addr, 0);
IPOS_AT(data_off, 16);
IPOS_AT(nb_segs, 20);
IPOS_AT(pkt_len, 36);
IPOS_AT(data_len, 40);
IPOS_AT(buf_len, 54);
_Static_assert(sizeof(((struct rte_mbuf *)0)->data_off) == 2 &&
		       sizeof(((struct rte_mbuf *)0)->nb_segs) == 2 &&
		       sizeof(((struct rte_mbuf *)0)->pkt_len) == 4 &&
		       sizeof(((struct rte_mbuf *)0)->data_len) == 2 &&
		       sizeof(((struct rte_mbuf *)0)->buf_len) == 2 &&
		       sizeof(((struct rte_mbuf *)0)->buf_addr) == 8,
	       "struct rte_mbuf field sizes changed: update src/port/dpdk.rs");

int ipos_eal_init(int argc, char **argv)
{
	int ret = rte_eal_init(argc, argv);
	return ret < 0 ? -rte_errno : ret;
}

int ipos_eal_cleanup(void) { return rte_eal_cleanup(); }

int ipos_errno(void) { return rte_errno; }

const char *ipos_strerror(int err) { return rte_strerror(err); }

int ipos_socket_id(void) { return (int)rte_socket_id(); }

struct rte_mempool *ipos_pool_create(const char *name, unsigned int n,
				     unsigned int cache, uint16_t data_room,
				     int socket)
{
	return rte_pktmbuf_pool_create(name, n, cache, 0, data_room, socket);
}

void ipos_pool_free(struct rte_mempool *mp) { rte_mempool_free(mp); }

unsigned int ipos_pool_avail(const struct rte_mempool *mp)
{
	return rte_mempool_avail_count(mp);
}

uint16_t ipos_port_count(void) { return rte_eth_dev_count_avail(); }

int ipos_port_valid(uint16_t port) { return rte_eth_dev_is_valid_port(port); }

static int stage_err(int stage, int ret)
{
	if (ret > 0)
		ret = -ret;
	if (ret == 0)
		ret = -EIO;
	return -(stage * 1000) + ret;
}

int ipos_port_init(uint16_t port, uint16_t nb_rxq, uint16_t nb_txq,
		   uint16_t nb_rxd, uint16_t nb_txd, struct rte_mempool *mp,
		   int promisc, const uint8_t *rss_key, uint8_t key_len,
		   int *rss_on)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	struct rte_eth_txconf txconf;
	int ret;
	uint16_t q;

	memset(&conf, 0, sizeof(conf));
	ret = rte_eth_dev_info_get(port, &info);
	if (ret != 0)
		return stage_err(IPOS_STAGE_INFO, ret);
	if (nb_rxq > info.max_rx_queues || nb_txq > info.max_tx_queues)
		return stage_err(IPOS_STAGE_CONFIGURE, -EINVAL);
	*rss_on = 0;
	if (nb_rxq > 1) {
		uint64_t hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP |
			       RTE_ETH_RSS_UDP) &
			      info.flow_type_rss_offloads;
		if (hf != 0) {
			conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
			conf.rx_adv_conf.rss_conf.rss_hf = hf;
			if (info.hash_key_size == key_len) {
				conf.rx_adv_conf.rss_conf.rss_key =
					(uint8_t *)rss_key;
				conf.rx_adv_conf.rss_conf.rss_key_len = key_len;
			}
			*rss_on = 1;
		}
	}
	if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE;
	ret = rte_eth_dev_configure(port, nb_rxq, nb_txq, &conf);
	if (ret != 0)
		return stage_err(IPOS_STAGE_CONFIGURE, ret);
	ret = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd);
	if (ret != 0)
		return stage_err(IPOS_STAGE_DESC, ret);
	for (q = 0; q < nb_rxq; q++) {
		ret = rte_eth_rx_queue_setup(port, q, nb_rxd,
					     rte_eth_dev_socket_id(port), NULL,
					     mp);
		if (ret < 0)
			return stage_err(IPOS_STAGE_RXQ, ret);
	}
	txconf = info.default_txconf;
	txconf.offloads = conf.txmode.offloads;
	for (q = 0; q < nb_txq; q++) {
		ret = rte_eth_tx_queue_setup(port, q, nb_txd,
					     rte_eth_dev_socket_id(port),
					     &txconf);
		if (ret < 0)
			return stage_err(IPOS_STAGE_TXQ, ret);
	}
	ret = rte_eth_dev_start(port);
	if (ret < 0)
		return stage_err(IPOS_STAGE_START, ret);
	if (promisc) {
		ret = rte_eth_promiscuous_enable(port);
		/* Some virtual devices are always promiscuous and say ENOTSUP. */
		if (ret != 0 && ret != -ENOTSUP)
			return stage_err(IPOS_STAGE_PROMISC, ret);
	}
	return 0;
}

int ipos_port_mac(uint16_t port, uint8_t mac[6])
{
	struct rte_ether_addr addr;
	int ret = rte_eth_macaddr_get(port, &addr);
	if (ret == 0)
		memcpy(mac, addr.addr_bytes, 6);
	return ret;
}

int ipos_port_name(uint16_t port, char *buf, unsigned int len)
{
	char name[RTE_ETH_NAME_MAX_LEN];
	int ret = rte_eth_dev_get_name_by_port(port, name);
	if (ret == 0 && len > 0) {
		strncpy(buf, name, len - 1);
		buf[len - 1] = '\0';
	}
	return ret;
}

int ipos_port_stats(uint16_t port, struct ipos_port_stats *out)
{
	struct rte_eth_stats st;
	int ret = rte_eth_stats_get(port, &st);
	if (ret != 0)
		return ret;
	out->ipackets = st.ipackets;
	out->opackets = st.opackets;
	out->ibytes = st.ibytes;
	out->obytes = st.obytes;
	out->imissed = st.imissed;
	out->ierrors = st.ierrors;
	out->oerrors = st.oerrors;
	out->rx_nombuf = st.rx_nombuf;
	return 0;
}

int ipos_port_stop(uint16_t port)
{
	int ret = rte_eth_dev_stop(port);
	if (ret == 0)
		ret = rte_eth_dev_close(port);
	return ret;
}

unsigned int ipos_lcore_count(void) { return rte_lcore_count(); }

unsigned int ipos_main_lcore(void) { return rte_get_main_lcore(); }

unsigned int ipos_next_worker(unsigned int prev)
{
	if (prev >= RTE_MAX_LCORE)
		prev = (unsigned int)-1;
	return rte_get_next_lcore(prev, 1, 0);
}

unsigned int ipos_lcore_none(void) { return RTE_MAX_LCORE; }

int ipos_remote_launch(int (*f)(void *), void *arg, unsigned int lcore)
{
	return rte_eal_remote_launch(f, arg, lcore);
}

int ipos_wait_lcore(unsigned int lcore) { return rte_eal_wait_lcore(lcore); }

uint16_t ipos_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts,
		       uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t ipos_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts,
		       uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *ipos_mbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

void ipos_mbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

uint16_t ipos_mbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }

int ipos_malloc_mmap_threshold(size_t bytes)
{
	if (bytes > (size_t)0x7fffffff)
		return 0;
	return mallopt(M_MMAP_THRESHOLD, (int)bytes);
}
