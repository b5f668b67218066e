// Package runtime executes a plan: it makes the project's networks (Linux
// bridges foldup owns, which Docker adopts), its firewall, its supervisor
// (the DNS/DHCP server) and its containers, in the order of the plan's
// dependency graph, as many at once as the graph allows; and it removes
// all of it again. It needs Linux: on other systems it is empty.
//
// Everything up makes is written to the project's journal before it is
// made, so down removes exactly that, whatever point an earlier up died
// at; and it removes nothing else: Docker objects only with the project's
// label. One project's changes are serialised by a lock file.
package runtime
