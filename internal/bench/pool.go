package main

import (
	"context"
	"sync"
)

// parallel calls fn for every index in [from, to) from workers goroutines.
// The first error cancels the context the remaining calls get, stops
// handing out indices and is returned once every call has ended.
func parallel(ctx context.Context, workers, from, to int, fn func(context.Context, int) error) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range max(workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := fn(wctx, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
feed:
	for i := from; i < to; i++ {
		select {
		case work <- i:
		case <-wctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return first
}
