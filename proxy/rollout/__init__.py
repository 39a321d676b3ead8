"""Rollout: which way each call goes (the route model, matching, canary buckets), one
configuration generation made concrete (each arm's upstream, key and limits), and the
shadow calls that compare two arms."""
