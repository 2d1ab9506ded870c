//! The site balancer: L4 and L7 proxying over the shared balancer engine.
