package main

// The performance targets `make bench` judges (issue 27). Ratios are
// ours/reference of medians measured in the same run; growth is ours at a
// scenario's large point over ours at baseN.
const (
	// bridge without ipMasq, at opts.bridgeN attached containers.
	bridgeAddRatioMax = 0.25
	bridgeDelRatioMax = 0.30
	// ipMasq ADD at opts.masqN attached containers.
	masqIPTAddRatioMax = 0.12
	masqNFTAddRatioMax = 0.10
	// growthMax bounds the growth of bridge ADD and DEL and of ipMasq ADD.
	growthMax = 1.15
	// host-local ADD+DEL at opts.leases existing leases.
	hostLocalRatioMax  = 0.10
	hostLocalGrowthMax = 1.30
	// burstRatioMax bounds the wall time of each burst (its ADDs, then its
	// DELs): ours at least 4x faster.
	burstRatioMax = 0.25
	// versionOverHelloMax bounds a plugin's VERSION start-up over that of a
	// hello-world Go binary built the same way.
	versionOverHelloMax = 1.2
)
