//go:build !daguha_upgrade_unchecked

package cluster

// UpgradeChecked is true in every real build: the leader writes a command
// only once every server reads the state schema that introduced its type
// (checkServersRead). The upgrade test builds a second, deliberately
// broken daguha with the tag daguha_upgrade_unchecked, where it is false,
// to show that an old server panics without the check. Never build a
// release with that tag.
const UpgradeChecked = true
