//! Selection algorithms shared by the DNS policy engine and the site balancer.
