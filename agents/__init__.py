"""Faust glue: topics, tables and agents that decode, call into `pipeline`, and send.

Run with `faust -A agents.app worker -l info` or `logad worker`.
"""
