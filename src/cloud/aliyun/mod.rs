//! Alibaba Cloud driver: ECS (2014-05-26) and VPC (2016-04-28) over RPC with ACS3 signing.

pub mod sign;
