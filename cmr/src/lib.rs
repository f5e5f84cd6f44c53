//! CMR (Contextual Memory Reweaving) benchmarks for labd.
//!
//! A small decoder-only transformer in tch with CMR hooked into chosen layers: a relevance [`scorer`] picks
//! states for a layered memory [`buffer`], a [`retriever`] brings stored states back, and a [`reconstructor`]
//! reweaves them into the states later layers read ([`reweave`]). [`measure`] runs the performance analyses and
//! the [`datasets`] tests and writes every measurement as a benchmark line of the labd run log ([`emit`]), which
//! labd ingests into its benchmarks view.
//!
//! Only [`datasets`] and [`emit`] build without the `torch` feature; the configuration lives in
//! `labd_schemas::cmr` (re-exported as [`config`]) so that labd can check one without this crate.

pub use labd_schemas::cmr as config;
pub mod datasets;
pub mod emit;

#[cfg(feature = "torch")]
pub mod buffer;
#[cfg(feature = "torch")]
pub mod check;
#[cfg(feature = "torch")]
pub mod measure;
#[cfg(feature = "torch")]
pub mod model;
#[cfg(feature = "torch")]
pub mod reconstructor;
#[cfg(feature = "torch")]
pub mod retriever;
#[cfg(feature = "torch")]
pub mod reweave;
#[cfg(feature = "torch")]
pub mod scorer;
