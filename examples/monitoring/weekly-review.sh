#!/bin/bash
# Weekly performance review script: the operators' guide's "Quick
# Performance Checklist", as written there. Point it at a server with
# CAXTON_SERVER (default http://127.0.0.1:8080) and CAXTON_DATA_DIR (for
# the token and `storage analyze`); `caxton check daily` is its daily twin.
echo "=== WEEKLY CAXTON PERFORMANCE REVIEW ==="
echo "Date: $(date)"

echo "\n1. Memory System Health:"
caxton memory capacity-check --percentage
caxton memory stats --trends --last 7d

echo "\n2. Agent Performance Summary:"
caxton agents performance-report --last 7d --include-slowest

echo "\n3. Resource Utilization:"
caxton system resources --trends --last 7d

echo "\n4. Database Health:"
caxton storage analyze --growth-rate --fragmentation

echo "\n5. Cache Efficiency:"
caxton memory cache-analysis --hit-rates --efficiency

echo "\n6. Alerts and Issues:"
caxton alerts summary --last 7d --severity warning,critical
