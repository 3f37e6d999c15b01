package l2

import (
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// removeTableTimeout bounds the wait for the kernel's answers to the
// removal batch (they come at once; this is only against a lost reply).
const removeTableTimeout = 5 * time.Second

// beforeSpoofTableRemoval, when set (by tests), runs between the batch that
// removed the last rule of our chain and the batch that removes the table.
var beforeSpoofTableRemoval func()

// afterSpoofRead, when set (by tests), runs in updateSpoofRules between its
// reading of the rules and its batch.
var afterSpoofRead func()

// removeEmptySpoofTable removes our base chain and our table in the current
// network namespace, in one batch, provided the kernel finds both empty when
// it runs the batch: both deletions carry NLM_F_NONREC, with which the
// kernel refuses (EBUSY) to delete a chain that still holds a rule (or that
// a rule jumps to) and a table that still holds a chain, set, object or
// flowtable, instead of deleting what they hold. The batch is all or
// nothing, so a rule that another plugin process added since our teardown
// read the chain keeps the chain and the table, and no batch of ours ever
// deletes a rule it did not name. google/nftables offers no way to set the
// flag on its DelChain and DelTable, hence the batch built here.
//
// A table that is no longer empty (EBUSY) or no longer there (ENOENT) is
// not an error: someone else's setup or teardown won.
func removeEmptySpoofTable() error {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return fmt.Errorf("open nftables netlink: %w", err)
	}
	defer conn.Close()

	chainAttrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: cString(spoofTable)},
		{Type: unix.NFTA_CHAIN_NAME, Data: cString(spoofChain)},
	})
	if err != nil {
		return err
	}
	tableAttrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: cString(spoofTable)},
	})
	if err != nil {
		return err
	}
	del := func(msgType uint16, attrs []byte) netlink.Message {
		return netlink.Message{
			Header: netlink.Header{
				Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msgType),
				Flags: netlink.Request | netlink.Acknowledge | netlink.HeaderFlags(unix.NLM_F_NONREC),
			},
			Data: append(nfgenmsg(unix.NFPROTO_BRIDGE, 0), attrs...),
		}
	}
	batchMsg := func(msgType uint16) netlink.Message {
		return netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(msgType), Flags: netlink.Request},
			Data:   nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES),
		}
	}
	msgs := []netlink.Message{
		batchMsg(unix.NFNL_MSG_BATCH_BEGIN),
		del(unix.NFT_MSG_DELCHAIN, chainAttrs),
		del(unix.NFT_MSG_DELTABLE, tableAttrs),
		batchMsg(unix.NFNL_MSG_BATCH_END),
	}
	if _, err := conn.SendMessages(msgs); err != nil {
		return fmt.Errorf("remove table bridge %s: %w", spoofTable, err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(removeTableTimeout)); err != nil {
		return err
	}
	// One answer (an acknowledgement or an error) per deletion, after the
	// kernel ran or aborted the whole batch. The first error means it was
	// aborted: nothing changed.
	for acks := 0; acks < 2; {
		replies, err := conn.Receive()
		if err != nil {
			if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.ENOENT) {
				return nil
			}
			return fmt.Errorf("remove table bridge %s: %w", spoofTable, err)
		}
		for _, m := range replies {
			if m.Header.Type == netlink.Error {
				acks++
			}
		}
	}
	return nil
}

// nfgenmsg is the netfilter header that starts every nfnetlink message.
func nfgenmsg(family uint8, resID uint16) []byte {
	return []byte{family, unix.NFNETLINK_V0, byte(resID >> 8), byte(resID)}
}

func cString(s string) []byte { return append([]byte(s), 0) }
