package config

import (
	"fmt"
	"slices"
)

// Bounds of the VLAN ids accepted by the vlan and vlanTrunk keys.
const (
	minVlanID = 1
	maxVlanID = 4094
)

// VlanTrunk is one entry of the vlanTrunk configuration list: either a single
// id, or an inclusive range minID..maxID, or both.
type VlanTrunk struct {
	MinID *int `json:"minID,omitempty"`
	MaxID *int `json:"maxID,omitempty"`
	ID    *int `json:"id,omitempty"`
}

// NeedsVlanFiltering reports whether the configuration asks for VLAN
// filtering on the bridge. As in the reference plugin this is the case when
// vlan is non-zero or the vlanTrunk key is present at all (a nil slice means
// the key was absent; an empty one that it was given as []).
func NeedsVlanFiltering(vlan int, trunks []VlanTrunk) bool {
	return vlan != 0 || trunks != nil
}

// VlanIDs validates the vlan and vlanTrunk keys and returns the trunk VLAN
// ids, sorted and without duplicates (nil when there are none). vlan must be
// in 0..4094 (0 means no native VLAN); trunk ids and range bounds must be in
// 1..4094, minID and maxID must be given together and minID <= maxID. vlan
// and vlanTrunk may be combined: vlan is the untagged native VLAN and the
// trunk ids are tagged. An id given more than once, in ranges or singly, is
// accepted and listed once, like the reference plugin does.
func VlanIDs(vlan int, trunks []VlanTrunk) ([]int, error) {
	if vlan < 0 || vlan > maxVlanID {
		return nil, fmt.Errorf("vlan: %d out of range 0-%d", vlan, maxVlanID)
	}
	seen := make(map[int]bool)
	var vlans []int
	add := func(v int) {
		if !seen[v] {
			seen[v] = true
			vlans = append(vlans, v)
		}
	}
	for i, t := range trunks {
		switch {
		case t.MinID != nil && t.MaxID != nil:
			lo, hi := *t.MinID, *t.MaxID
			if err := checkTrunkID(i, "minID", lo); err != nil {
				return nil, err
			}
			if err := checkTrunkID(i, "maxID", hi); err != nil {
				return nil, err
			}
			if lo > hi {
				return nil, fmt.Errorf("vlanTrunk[%d]: minID %d is greater than maxID %d", i, lo, hi)
			}
			for v := lo; v <= hi; v++ {
				add(v)
			}
		case t.MinID != nil:
			return nil, fmt.Errorf("vlanTrunk[%d]: minID %d given without maxID (both are needed for a range)", i, *t.MinID)
		case t.MaxID != nil:
			return nil, fmt.Errorf("vlanTrunk[%d]: maxID %d given without minID (both are needed for a range)", i, *t.MaxID)
		}
		if t.ID != nil {
			if err := checkTrunkID(i, "id", *t.ID); err != nil {
				return nil, err
			}
			add(*t.ID)
		}
	}
	slices.Sort(vlans)
	return vlans, nil
}

func checkTrunkID(index int, key string, v int) error {
	if v < minVlanID || v > maxVlanID {
		return fmt.Errorf("vlanTrunk[%d]: %s %d out of range %d-%d", index, key, v, minVlanID, maxVlanID)
	}
	return nil
}
