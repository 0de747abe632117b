#!/bin/sh
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
EOT
sed -e 's/^\(smtp *inet.*\)$/#\1/' /etc/postfix/master.cf | awk '
/^#/ || /^[ \t]/ || NF==0 {print; next}
{ if ($5=="y" || $5=="-") $5="n"; print }' > $DIR/master.cf
echo "127.0.0.1:2525 inet n - n - - smtpd" >> $DIR/master.cf
echo "127.0.0.1:2587 inet n - n - - smtpd -o syslog_name=postfix/submission" >> $DIR/master.cf
echo "postmaster: root" > $DIR/aliases
postalias -c $DIR hash:$DIR/aliases
echo $DIR
