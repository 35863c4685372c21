# apps_probe.tcl: tclsh `socket -async` against an echo server (HOST PORT [REFUSED_PORT]): the
# connect completes in the event loop (fileevent writable, fconfigure -error empty), -peername,
# -sockname (an address, a port), a 500 kB echo read with fileevent readable in binary mode, then half-close and EOF; a refused
# port reports its error through fconfigure -error.  test_shim_apps_heavy.sh wants the same
# lines over kernel TCP and under the shim.
lassign $argv host port refused
set data [string repeat "0123456789abcdef" 32000]

set s [socket -async $host $port]
fconfigure $s -blocking 0 -translation binary -buffering none
fileevent $s writable [list set ::ready 1]
after 10000 [list set ::ready timeout]
vwait ::ready
fileevent $s writable {}
set sn [fconfigure $s -sockname]
puts "tcl: async connect $::ready error '[fconfigure $s -error]' peer [lrange [fconfigure $s -peername] 0 0] port [lindex [fconfigure $s -peername] 2] sockname [lindex $sn 0] port>0 [expr {[lindex $sn 2] > 0}]"
set ::got ""
proc readable {s} {
    append ::got [read $s]
    if {[eof $s]} { set ::done 1 }
}
fileevent $s readable [list readable $s]
puts -nonewline $s $data
flush $s
close $s write
after 20000 [list set ::done timeout]
vwait ::done
puts "tcl: echo [string length $::got] same [expr {$::got eq $data}] end $::done"
close $s

if {$refused eq ""} exit
set r [socket -async $host $refused]
fileevent $r writable [list set ::rready 1]
after 10000 [list set ::rready timeout]
vwait ::rready
puts "tcl: refused port '[fconfigure $r -error]'"
catch {close $r}
