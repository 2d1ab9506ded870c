//! Health checks of sites and the health board the DNS path reads.
