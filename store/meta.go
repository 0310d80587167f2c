package store

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	daguhav1 "github.com/daguha/daguha/proto/daguha/v1"
)

// metaEntry holds the cluster-wide settings under one key.
type metaEntry struct {
	Key  string
	Meta *daguhav1.ClusterMeta
}

const clusterMetaKey = "cluster"

func metaTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableMeta,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
		},
	}
}

// SetClusterMeta stores the settings unless some are stored already: the
// first leader's choice stands. It returns the settings in force. A command
// without settings is refused: stored, it would count as set on a replica
// that replayed it but vanish from snapshots (which hold no record for it),
// so a restored replica would take the next leader's settings instead.
func (s *StateStore) SetClusterMeta(index uint64, meta *daguhav1.ClusterMeta) (*daguhav1.ClusterMeta, error) {
	if meta == nil {
		return nil, fmt.Errorf("set cluster meta at index %d: no settings", index)
	}
	txn := s.db.Txn(true)
	defer txn.Abort()
	raw, err := txn.First(tableMeta, "id", clusterMetaKey)
	if err != nil {
		return nil, fmt.Errorf("read cluster meta: %w", err)
	}
	if raw != nil {
		return raw.(*metaEntry).Meta, nil
	}
	stored := proto.Clone(meta).(*daguhav1.ClusterMeta)
	if err := txn.Insert(tableMeta, &metaEntry{Key: clusterMetaKey, Meta: stored}); err != nil {
		return nil, fmt.Errorf("write cluster meta: %w", err)
	}
	if err := bumpIndex(txn, tableMeta, index); err != nil {
		return nil, err
	}
	txn.Commit()
	return stored, nil
}

// ClusterMeta returns the cluster-wide settings, or nil before a leader
// has chosen them.
func (s *StateStore) ClusterMeta() *daguhav1.ClusterMeta {
	raw, err := s.db.Txn(false).First(tableMeta, "id", clusterMetaKey)
	if err != nil || raw == nil {
		return nil
	}
	return raw.(*metaEntry).Meta
}

// ClusterMeta restores the settings from a snapshot.
func (r *Restore) ClusterMeta(meta *daguhav1.ClusterMeta) error {
	return r.txn.Insert(tableMeta, &metaEntry{Key: clusterMetaKey, Meta: meta})
}
