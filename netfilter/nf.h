/* SPDX-License-Identifier: MIT */
/* Interception backends (iptables via libiptc, nftables via libnftnl) and
 * policy routing via libnl, behind one interface. */
#ifndef SLUICE_NF_H
#define SLUICE_NF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <netinet/in.h>

#include "sluice.h"

/* Names of what sluice installs; cleanup finds exactly these. */
#define NF_CHAIN		"NF-INTERCEPT"		/* PREROUTING: TPROXY */
#define NF_CHAIN_OUT		"NF-INTERCEPT-OUT"	/* OUTPUT: mark local */
#define NF_NFT_TABLE		"sluice"		/* table inet sluice */

/*
 * One interception rule: traffic of proto to dst (and from src, when
 * src.prefixlen is not 0 or src.family is set) with a destination port in
 * [port_lo, port_hi] goes to the transparent listener of its family.
 */
struct nf_rule {
	const char	*comment;	/* the service name */
	int		 family;	/* AF_INET, AF_INET6 */
	uint8_t		 proto;		/* IPPROTO_TCP, IPPROTO_UDP */
	struct cidr	 dst;
	struct cidr	 src;		/* family 0: any source */
	uint16_t	 port_lo, port_hi;
};

/* Where intercepted flows go, and the marks. Port 0: no such listener. */
struct nf_params {
	uint32_t		mark;		/* tproxy mark, policy routing */
	uint32_t		bypass_mark;	/* sluice's own sockets */
	struct sockaddr_in	tcp4, udp4;
	struct sockaddr_in6	tcp6, udp6;
};

struct nf_ops {
	const char	*name;
	/* 0 if this backend can work here (module, privileges), else -1. */
	int		(*probe)(void);
	/*
	 * Replaces every rule sluice has installed with exactly rules[0..n),
	 * atomically per address family. Logs every error; 0 or -1.
	 */
	int		(*apply)(const struct nf_params *,
			    const struct nf_rule *, size_t n);
	/* Removes everything this backend installed; 0 if none was there. */
	int		(*flush)(void);
	/* Human-readable listing for `sluice dump`. */
	void		(*dump)(FILE *);
};

extern const struct nf_ops nf_ipt_ops;
extern const struct nf_ops nf_nft_ops;

/* nf.c */
/* Picks a backend: auto tries nftables, then iptables. NULL if none. */
const struct nf_ops *nf_select(enum nf_backend_kind);
/*
 * Expands the config's CIDR intercepts (and extra pool/real addresses,
 * each tagged with its service) into rules. The caller frees *out.
 */
struct nf_extra {
	const struct service	*svc;
	struct cidr		 addr;
};
int	nf_rules_build(const struct config *, const struct nf_extra *,
	    size_t nextra, struct nf_rule **out, size_t *nout);
/* Removes every backend's state and sluice's routes and rules. */
int	nf_cleanup_all(uint32_t route_table);

/* rt.c: policy routing and local routes through libnl. */
/*
 * Installs "fwmark mark/mark lookup table" rules (priority
 * SLUICE_RULE_PRIO, protocol SLUICE_RTPROT) and "local default dev lo"
 * routes in table, for both families.
 */
int	rt_setup(uint32_t mark, uint32_t table);
/* Adds or removes "local ADDR dev lo table local proto sluice". */
int	rt_local_add(const struct cidr *);
int	rt_local_del(const struct cidr *);
/*
 * Whether family can be intercepted here: IPv6 may be missing from the
 * kernel or disabled on lo. 0 with *why set if not.
 */
int	rt_family_ok(int family, const char **why);
/* Removes every rule and route tagged SLUICE_RTPROT (any table). */
int	rt_cleanup(uint32_t table);
void	rt_dump(FILE *);

#endif /* SLUICE_NF_H */
