package store

import (
	"fmt"
	"reflect"
	"sort"

	"google.golang.org/protobuf/proto"
)

// SameContents says how two stores differ, or returns nil when every
// table, read through every one of its indexes, gives the same records in
// the same order in both: what each query by an index answers. It is for
// tests (a restored store against one built by inserts) and reads the
// schema, so a table or index added later is compared too.
func SameContents(a, b *StateStore) error {
	tables := schema().Tables
	names := make([]string, 0, len(tables))
	for name := range tables {
		names = append(names, name)
	}
	sort.Strings(names)
	ta, tb := a.db.Txn(false), b.db.Txn(false)
	for _, table := range names {
		indexes := make([]string, 0, len(tables[table].Indexes))
		for name := range tables[table].Indexes {
			indexes = append(indexes, name)
		}
		sort.Strings(indexes)
		for _, index := range indexes {
			ia, err := ta.Get(table, index)
			if err != nil {
				return fmt.Errorf("%s by %s: %w", table, index, err)
			}
			ib, err := tb.Get(table, index)
			if err != nil {
				return fmt.Errorf("%s by %s: %w", table, index, err)
			}
			for n := 0; ; n++ {
				x, y := ia.Next(), ib.Next()
				if x == nil && y == nil {
					break
				}
				if x == nil || y == nil || !sameRecord(x, y) {
					return fmt.Errorf("%s by %s: record %d differs: %v and %v", table, index, n, x, y)
				}
			}
		}
	}
	return nil
}

func sameRecord(x, y interface{}) bool {
	mx, okx := x.(proto.Message)
	my, oky := y.(proto.Message)
	if okx && oky {
		return proto.Equal(mx, my)
	}
	return reflect.DeepEqual(x, y)
}
