//! Chase: resolving a path safely as root (see [`super`]).
