package config

import (
	"encoding/json"

	"github.com/containernetworking/cni/pkg/types"
)

// A GC request (CNI 1.1) lists the attachments still valid under
// ValidAttachmentsKey. The text of CNI 1.1.0 named the list
// OldValidAttachmentsKey, and libcni sends both; a runtime written after
// that text sends only the old one, which read as no list at all would
// make every attachment of the network stale.
const (
	ValidAttachmentsKey    = "cni.dev/valid-attachments"
	OldValidAttachmentsKey = "cni.dev/attachments"
)

// ValidAttachments returns the valid attachments of a GC request: those of
// ValidAttachmentsKey, else those of OldValidAttachmentsKey; nil when
// neither key is there (or both are null).
func ValidAttachments(stdin []byte) ([]types.GCAttachment, error) {
	var keys struct {
		Valid []types.GCAttachment `json:"cni.dev/valid-attachments"`
		Old   []types.GCAttachment `json:"cni.dev/attachments"`
	}
	if err := json.Unmarshal(stdin, &keys); err != nil {
		return nil, decodeError("GC request", err)
	}
	if keys.Valid != nil {
		return keys.Valid, nil
	}
	return keys.Old, nil
}
