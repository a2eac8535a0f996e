//! Creds: acting with the app's filesystem credentials (see [`super`]).
