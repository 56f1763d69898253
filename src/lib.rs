//! multicloud-ecs: a Kubernetes operator giving one declarative API for virtual machines across clouds.

pub mod api;
pub mod controller;
pub mod metrics;
pub mod operator;
pub mod providers;
pub mod scheduler;
