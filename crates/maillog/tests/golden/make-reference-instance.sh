#!/bin/sh
# Sets up the private Debian Postfix 3.7.11 that produced the golden logs here (as root;
# see /work/shared/POSTFIX-REFERENCE.md) and prints its directory. Then, as recorded:
#   postfix -c $DIR start
#   swaks --server 127.0.0.1 --port 2525 --helo client.example.org --from sender@example.org
#     --to alice@mx.example.test | nobody@... | victim@remote.test | alice@...,nobody@...
#     --port 2587 --to bob@mx.example.test (alias of alice) | --quit-after EHLO
#   sendmail -C $DIR to ghost@mx.example.test (bounce) and far@remote.test (deferred)
#   python sockets: lost connection after MAIL, timeout after EHLO, improper pipelining
#   postfix reload (with smtpd_relay_restrictions ... reject_unauth_destination and SASL)
#   swaks: relay (554), ghost (550), alice+ghost, AUTH PLAIN carol on 2587, wrong password
#   postqueue -f after 30 s (expired), postfix stop; normalise.py $DIR < maillog > golden
# The syslog golden: a python listener on /dev/log and maillog_file empty.
# The user alice must exist (useradd -M alice); carol is in $DIR/sasldb2 (saslpasswd2).
set -e
DIR=$(mktemp -d /tmp/pfref.s3.XXXXXX); chmod 0755 $DIR
mkdir $DIR/queue $DIR/data $DIR/spool
chown postfix $DIR/data; chmod 0700 $DIR/data; chmod 1777 $DIR/spool
cat > $DIR/main.cf <<EOT
queue_directory = $DIR/queue
data_directory = $DIR/data
mail_spool_directory = $DIR/spool
maillog_file = $DIR/maillog
maillog_file_prefixes = $DIR
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.example.test
mydomain = example.test
mydestination = mx.example.test, localhost
mynetworks = 127.0.0.2/32
compatibility_level = 3.6
alias_maps = hash:$DIR/aliases
alias_database = hash:$DIR/aliases
daemon_directory = /usr/lib/postfix/sbin
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
smtpd_timeout = 3s
relayhost = [127.0.0.1]:1
maximal_queue_lifetime = 30s
bounce_queue_lifetime = 30s
smtp_connect_timeout = 2s
cyrus_sasl_config_path = $DIR/sasl
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtpd_hard_error_limit = 3
EOT
mkdir $DIR/sasl
printf 'pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\nsasldb_path: %s/sasldb2\n' $DIR > $DIR/sasl/smtpd.conf
echo secret | saslpasswd2 -p -f $DIR/sasldb2 -c -u mx.example.test carol; chown postfix $DIR/sasldb2
sed -e 's/^\(smtp *inet.*\)$/#\1/' /etc/postfix/master.cf | awk '
/^#/ || /^[ \t]/ || NF==0 {print; next}
{ if ($5=="y" || $5=="-") $5="n"; print }' > $DIR/master.cf
echo "127.0.0.1:2525 inet n - n - - smtpd" >> $DIR/master.cf
echo "127.0.0.1:2587 inet n - n - - smtpd -o syslog_name=postfix/submission -o smtpd_sasl_auth_enable=yes" >> $DIR/master.cf
printf "postmaster: root\nbob: alice\n" > $DIR/aliases
postalias -c $DIR hash:$DIR/aliases
echo $DIR
