//go:build daguha_upgrade_unchecked

package cluster

// UpgradeChecked is false only in the upgrade test's deliberately broken
// build (tag daguha_upgrade_unchecked): the leader writes every command
// whatever its servers run.
const UpgradeChecked = false
