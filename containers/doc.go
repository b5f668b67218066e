// Package containers is foldup's side of the Docker engine: the pure
// conversion of a planned member into the engine's create request
// (SpecFor, table-tested without an engine), and the engine calls up,
// down and the verbs make, through Engine, the narrow view of the Docker
// client they use.
package containers
