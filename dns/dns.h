/* SPDX-License-Identifier: MIT */
/* Nameserver thread: wire format, name table, address pool, resolver setup. */
#ifndef SLUICE_DNS_H
#define SLUICE_DNS_H

#endif /* SLUICE_DNS_H */
