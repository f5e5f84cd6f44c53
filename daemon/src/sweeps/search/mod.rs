//! Choosing trials from the results so far, and stopping hopeless ones: pure, seeded algorithms with no I/O.
//! The scheduler feeds them what the views know and records what they decide as events.
//!
//! - [`domain`]: a swept parameter as a search space (float, int, either on a log scale, or categorical), and
//!   the internal coordinate the samplers work in.
//! - [`tpe`]: the tree-structured Parzen estimator (Optuna's default sampler): split the finished trials at a
//!   quantile into good and bad, fit a Parzen density to each per parameter, draw candidates from the good one
//!   and take the one with the best ratio.
//! - [`nsga2`]: NSGA-II for two or more objectives (Optuna's `NSGAIISampler`): non-dominated sorting, crowding
//!   distance, binary tournaments, uniform crossover and mutation, generation by generation.
//! - [`qmc`]: quasi-random points (a randomly shifted Halton sequence), spread more evenly than random ones.
//! - [`prune`]: early stopping from intermediate values: the median rule, ASHA (asynchronous successive
//!   halving) and Hyperband's brackets over it.
//! - [`pareto`]: the non-dominated trials of two or more objectives.
//! - [`rng`]: the seeded generator they share.

pub mod domain;
pub mod nsga2;
pub use crate::analytics::pareto;
pub mod prune;
pub mod qmc;
pub mod rng;
pub mod tpe;

pub use labd_schemas::sweep::Direction;
