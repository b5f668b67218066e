// Package executor runs a project's plan and the verbs on it. An
// Executor, built from Options, holds the engine client; its Up plans the
// project (the planner decides every step) and runs the plan's steps in
// the order of its graph, as many at once as the graph allows, sending
// what it does as Events; Down removes all of it again; Ps, Logs, Start,
// Stop, Restart, Exec and Console act on what runs. It needs Linux: on
// other systems it has only its types.
//
// Everything up makes is written to the project's journal (package
// state) before it is made, so down removes exactly that, whatever point
// an earlier up died at; and it removes nothing else: Docker objects only
// with the project's label. One project's changes are serialised by a
// lock file. VMs are package vm's, containers package containers', and
// the long-lived part of a project package supervisor's.
package executor
